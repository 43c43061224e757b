"""Deeply nested JSON at every JSON edge (issue 9, item 5), against the in-process app on SQLite and PostgreSQL.

orjson parses 1,024 levels but writes only 254: before the limit, ingest answered 500 between those
depths, and an event just under 254 was accepted and then made every ``GET /v1/events`` page holding
it a 500. Now a body nesting deeper than ``MAX_DEPTH`` is a 422 in the dialect's shape, and whatever
is accepted can be read back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from mailhooks.core.events import MAX_EVENT_BYTES
from mailhooks.core.nesting import MAX_DEPTH, TOO_DEEP
from tests.in_process import InProcessApp
from tests.support import Tenant


def nested(levels: int) -> str:
    """``levels`` arrays around a number."""
    return "[" * levels + "1" + "]" * levels


def event_of_depth(tenant: Tenant, depth: int, event_id: str) -> str:
    """One event whose whole body nests ``depth`` levels: the body, ``user-variables``, then arrays."""
    head = orjson.dumps({"id": event_id, "domain": tenant.domain, "event": "delivered",
                         "recipient": "bob@example.org"}).decode()[:-1]
    return head + ',"user-variables":{"x":' + nested(depth - 2) + "}}"


@pytest.fixture()
def native(in_process: InProcessApp, tenant: Tenant) -> Iterator[httpx.Client]:
    with in_process.client(headers={"Authorization": f"Bearer {tenant.api_key}"}) as client:
        yield client


def post(client: httpx.Client, body: str | bytes) -> httpx.Response:
    return client.post("/v1/events", content=body, headers={"Content-Type": "application/json"})


def read_back(client: httpx.Client, event_id: str) -> Any:
    listed = client.get("/v1/events", params={"event_id": event_id})
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    return item["data"]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100, 253, 254, 300, 1000, 1024, 1025, 2000])
def test_too_deep_an_event_is_a_422_never_a_500(native: httpx.Client, tenant: Tenant, depth: int) -> None:
    response = post(native, event_of_depth(tenant, depth, f"deep-{depth}"))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["message"] == TOO_DEEP
    # named by the field that nests too deep; beyond what the parser reads, by the body
    assert body["errors"] == ({"body": [TOO_DEEP]} if depth > 1024 else {"user-variables": [TOO_DEEP]})
    # nothing of it was stored, and the list still answers
    assert native.get("/v1/events", params={"event_id": f"deep-{depth}"}).json()["items"] == []
    assert native.get("/v1/events").status_code == 200


def test_an_event_at_the_limit_is_accepted_and_served(native: httpx.Client, tenant: Tenant) -> None:
    response = post(native, event_of_depth(tenant, MAX_DEPTH, "at-the-limit"))
    assert response.status_code == 202, response.text
    data = read_back(native, "at-the-limit")
    assert data["user-variables"]["x"] == orjson.loads(nested(MAX_DEPTH - 2))
    # and every page holding it answers too
    assert native.get("/v1/events", params={"limit": 1000}).status_code == 200


def test_depth_counts_over_the_whole_batch(native: httpx.Client, tenant: Tenant) -> None:
    """In an array the array is a level too; the error names the event and its field."""
    fits = event_of_depth(tenant, MAX_DEPTH - 1, "batch-fits")
    deep = event_of_depth(tenant, MAX_DEPTH, "batch-deep")  # one level deeper once inside the array
    response = post(native, "[" + fits + "," + deep + "]")
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == {"1.user-variables": [TOO_DEEP]}
    assert native.get("/v1/events", params={"event_id": "batch-fits"}).json()["items"] == []
    assert post(native, "[" + fits + "]").status_code == 202
    assert read_back(native, "batch-fits")["user-variables"]["x"] == orjson.loads(nested(MAX_DEPTH - 3))


def test_size_is_bounded_per_event_and_per_body(native: httpx.Client, tenant: Tenant) -> None:
    big = {"id": "too-big", "domain": tenant.domain, "event": "delivered", "recipient": "bob@example.org",
           "user-variables": {"blob": "x" * MAX_EVENT_BYTES}}
    response = native.post("/v1/events", json=big)
    assert response.status_code == 422, response.text
    assert list(response.json()["errors"]) == ["body"]
    response = native.post("/v1/events", json=[{**big, "id": "small", "user-variables": {}}, big])
    assert response.status_code == 422, response.text
    assert list(response.json()["errors"]) == ["1"]
    huge = native.post("/v1/events", json={**big, "user-variables": {"blob": "x" * (2 * 1024 * 1024)}})
    assert huge.status_code == 413 and "message" in huge.json(), huge.text


def test_kirim_bodies_are_bounded_too(in_process: InProcessApp, tenant: Tenant) -> None:
    url = f"/api/domains/{tenant.domain}/webhooks"
    for depth in (MAX_DEPTH + 1, 253, 300, 1000, 2000):
        body = '{"type":"bounced","url":"https://hooks.example.com/k","x":' + nested(depth - 1) + "}"
        with in_process.client(auth=(tenant.username, tenant.api_key)) as kirim:
            response = kirim.post(url, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (depth, response.text)
        assert response.json() == {"success": False, "message": "Validation failed.", "errors": {"body": [TOO_DEEP]}}
