"""Tenant isolation against the real app in this process (SQLite and PostgreSQL), with a real
``mailhooks serve`` on the same database making the deliveries.

Account B owns a domain with webhooks made through every dialect (Mailgun v3, v4, v1 and Kirim), events
and deliveries (one of its webhooks disabled by a 410). Account A, with a domain and webhook of its own,
then tries to read, change and detect B's things through the Mailgun and Kirim dialects and the native
API. Every answer A gets about B's domain, webhooks, events and deliveries must be byte-for-byte the
answer for a thing that does not exist at all, and afterwards B reads everything back unchanged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.in_process import InProcessApp
from tests.support import Provisioner, Receiver, ServerProcess, Tenant

IGNORED_HEADERS = {"date"}  # everything else (status, body, content-type, length, auth challenge) must match


@dataclass
class World:
    a: Tenant
    b: Tenant
    ghost_domain: str  # a domain nobody has, as long as B's
    b_mailgun_group: str  # B's Mailgun v1 webhook_id
    b_kirim_guid: str  # B's Kirim webhook (enabled)
    b_disabled_guid: str  # B's webhook that a 410 disabled
    a_kirim_guid: str  # A's own Kirim webhook, on A's own domain
    b_event_ids: list[str] = field(default_factory=list)
    b_delivery_ids: list[int] = field(default_factory=list)


def client(app: InProcessApp, user: str, key: str) -> httpx.Client:
    return app.client(auth=(user, key))


def mailgun(app: InProcessApp, t: Tenant) -> httpx.Client:
    return client(app, "api", t.api_key)


def kirim(app: InProcessApp, t: Tenant) -> httpx.Client:
    return client(app, t.username, t.api_key)


def fingerprint(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k.lower(), v) for k, v in response.headers.items() if k.lower() not in IGNORED_HEADERS)
    return response.status_code, response.content, headers


def same_as_missing(foreign: httpx.Response, missing: httpx.Response, status: int) -> None:
    """A's answer about B's thing is exactly the answer about a thing that does not exist."""
    assert foreign.status_code == status, (foreign.request.method, foreign.request.url, foreign.text)
    assert fingerprint(foreign) == fingerprint(missing), (foreign.request.url, foreign.text, missing.text)


def wait_until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def same_length_name(name: str) -> str:
    """A domain nobody owns, as long as ``name`` (``d0-<hex>.example``)."""
    return f"d0-{uuid.uuid4().hex[:len(name) - len('d0-.example')]}.example"


# ---------------------------------------------------------------------------- B's world, made once per backend
@pytest.fixture(scope="module")
def hooks(receiver: Receiver) -> Receiver:
    """Where A's and B's webhooks point: this module's receiver (conftest), paths under /a/ and /b/."""
    return receiver


@pytest.fixture(scope="module")
def world(in_process: InProcessApp, server: ServerProcess, provision: Provisioner, hooks: Receiver) -> World:
    """Made through ``in_process``; ``server``'s dispatcher, on the same database, sends the deliveries (and
    would send anything A's attempts queued for B)."""
    app = in_process
    a, b = provision.tenant(prefix="a"), provision.tenant(prefix="b")
    hooks.script("/b/gone", [410])
    with mailgun(app, b) as mg, kirim(app, b) as ki:
        r = mg.post(f"/v3/domains/{b.domain}/webhooks", data={"id": "clicked", "url": [hooks.url("/b/c1"),
                                                                                       hooks.url("/b/c2")]})
        assert r.status_code == 200, r.text
        r = mg.post(f"/v4/domains/{b.domain}/webhooks", data={"url": hooks.url("/b/v4"),
                                                              "event_types": ["delivered", "opened"]})
        assert r.status_code == 200, r.text
        r = mg.post("/v1/webhooks", data={"url": hooks.url("/b/v1"), "event_types": ["complained"],
                                          "description": "B's account hook"})
        assert r.status_code == 200, r.text
        group = r.json()["webhook_id"]
        r = ki.post(f"/api/domains/{b.domain}/webhooks", json={"type": "bounced", "url": hooks.url("/b/kirim")})
        assert r.status_code == 201, r.text
        kirim_guid = r.json()["data"]["webhook_guid"]
        r = ki.post(f"/api/domains/{b.domain}/webhooks", json={"type": "failed", "url": hooks.url("/b/gone")})
        assert r.status_code == 201, r.text
        disabled_guid = r.json()["data"]["webhook_guid"]

    with kirim(app, a) as ki:
        r = ki.post(f"/api/domains/{a.domain}/webhooks", json={"type": "bounced", "url": hooks.url("/a/kirim")})
        assert r.status_code == 201, r.text
        a_guid = r.json()["data"]["webhook_guid"]

    w = World(a, b, same_length_name(b.domain), group, kirim_guid, disabled_guid, a_guid)
    with client(app, "api", b.api_key) as native:
        types = ("clicked", "delivered", "complained", "bounced", "failed")
        events = [{"id": f"b-{t}-{uuid.uuid4().hex[:8]}", "domain": b.domain, "event": t,
                   "recipient": "someone@b.example"} for t in types]
        r = native.post("/v1/events", json=events)
        assert r.status_code == 202, r.text
        w.b_event_ids = r.json()["ids"]

        def settled() -> list[dict[str, Any]] | None:
            items: list[dict[str, Any]] = native.get("/v1/deliveries").json()["items"]
            done = len(items) == 6 and all(d["status"] in ("succeeded", "rejected") for d in items)
            return items if done else None

        items = wait_until(settled)
        w.b_delivery_ids = sorted(d["id"] for d in items)
        by_url = {d["url"]: d for d in items}
        assert by_url[hooks.url("/b/gone")]["status"] == "rejected"
        # the 410 disabled that webhook: B's next "failed" event is recorded failed without a send
        r = native.post("/v1/events", json={"domain": b.domain, "event": "failed", "recipient": "x@b.example"})
        assert r.status_code == 202, r.text
        [delivery] = native.get("/v1/deliveries", params={"event_id": r.json()["ids"][0]}).json()["items"]
        assert delivery["status"] == "failed" and "disabled" in delivery["last_error"], delivery
        w.b_event_ids.append(r.json()["ids"][0])
        w.b_delivery_ids.append(delivery["id"])
    return w


def snapshot(app: InProcessApp, w: World) -> dict[str, bytes]:
    """Everything B can read about its webhooks, events and deliveries, as raw bytes."""
    b = w.b
    out: dict[str, bytes] = {}
    with mailgun(app, b) as mg, kirim(app, b) as ki, client(app, "api", b.api_key) as native:
        for path in (f"/v3/domains/{b.domain}/webhooks", f"/v3/domains/{b.domain}/webhooks/clicked", "/v1/webhooks",
                     f"/v1/webhooks/{w.b_mailgun_group}"):
            r = mg.get(path)
            assert r.status_code == 200, (path, r.text)
            out[path] = r.content
        for path in (f"/api/domains/{b.domain}/webhooks", f"/api/domains/{b.domain}/webhooks/{w.b_kirim_guid}",
                     f"/api/domains/{b.domain}/webhooks/{w.b_disabled_guid}"):
            r = ki.get(path)
            assert r.status_code == 200, (path, r.text)
            out[path] = r.content
        for path in ["/v1/deliveries", "/v1/events", *(f"/v1/deliveries/{i}" for i in w.b_delivery_ids)]:
            r = native.get(path)
            assert r.status_code == 200, (path, r.text)
            out[path] = r.content
    return out


def assert_b_unchanged(app: InProcessApp, w: World, before: dict[str, bytes], hooks: Receiver,
                       sent_before: int) -> None:
    after = snapshot(app, w)
    for path, body in before.items():
        assert after[path] == body, f"B's {path} changed after A's attempts"
    # the disabled webhook is still disabled: a new event for it is recorded failed, nothing is sent
    with client(app, "api", w.b.api_key) as native:
        r = native.post("/v1/events", json={"domain": w.b.domain, "event": "failed", "recipient": "y@b.example"})
        assert r.status_code == 202, r.text
        [delivery] = native.get("/v1/deliveries", params={"event_id": r.json()["ids"][0]}).json()["items"]
        assert delivery["status"] == "failed" and "disabled" in delivery["last_error"], delivery
    time.sleep(0.3)  # anything A had queued for B would be sent by now (the dispatcher polls every 0.5 s)
    assert len([r for r in hooks.requests if r.path.startswith("/b/")]) == sent_before, "B's URLs got extra sends"


def b_sends(hooks: Receiver) -> int:
    return len([r for r in hooks.requests if r.path.startswith("/b/")])


# ---------------------------------------------------------------------------- Mailgun dialect
def test_mailgun_domain_webhooks_of_another_account_look_missing(in_process: InProcessApp, world: World,
                                                                 hooks: Receiver) -> None:
    w, evil = world, "https://evil.example.com/steal"
    before, sent = snapshot(in_process, w), b_sends(hooks)
    calls: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/v3/domains/{d}/webhooks", {}, 404),
        ("GET", "/v3/domains/{d}/webhooks/clicked", {}, 404),
        ("GET", "/v3/domains/{d}/webhooks/delivered", {}, 404),
        ("POST", "/v3/domains/{d}/webhooks", {"data": {"id": "clicked", "url": evil}}, 404),
        ("POST", "/v3/domains/{d}/webhooks", {"data": {"id": "accepted", "url": evil}}, 404),
        ("PUT", "/v3/domains/{d}/webhooks/clicked", {"data": {"url": evil}}, 404),
        ("DELETE", "/v3/domains/{d}/webhooks/clicked", {}, 404),
        ("DELETE", "/v3/domains/{d}/webhooks/opened", {}, 404),
        ("PUT", "/v3/domains/{d}/webhooks/clicked/test", {"data": {"url": hooks.url("/b/c1")}}, 404),
        ("PUT", "/v3/domains/{d}/webhooks/clicked/test", {}, 404),
        # the Python SDK's v4 calls on /v3 paths
        ("POST", "/v3/domains/{d}/webhooks", {"data": {"url": evil, "event_types": "clicked"}}, 404),
        ("PUT", "/v3/domains/{d}/webhooks", {"data": {"url": hooks.url("/b/v4"), "event_types": "clicked"}}, 404),
        ("DELETE", "/v3/domains/{d}/webhooks", {"params": {"url": hooks.url("/b/v4")}}, 404),
        ("POST", "/v4/domains/{d}/webhooks", {"data": {"url": evil, "event_types": ["clicked", "opened"]}}, 404),
        ("PUT", "/v4/domains/{d}/webhooks", {"data": {"url": hooks.url("/b/v4"), "event_types": "accepted"}}, 404),
        ("DELETE", "/v4/domains/{d}/webhooks", {"params": {"url": hooks.url("/b/c1")}}, 404),
    ]
    with mailgun(in_process, w.a) as mg:
        for method, path, kwargs, status in calls:
            for b_name in (w.b.domain, w.b.domain.upper()):
                foreign = mg.request(method, path.format(d=b_name), **kwargs)
                missing = mg.request(method, path.format(d=w.ghost_domain), **kwargs)
                same_as_missing(foreign, missing, status)
        assert mg.get(f"/v3/domains/{w.b.domain}/webhooks").content == b'{"message":"Domain not found"}\n'
        # A's own lists show nothing of B's
        assert hooks.url("/b/c1").encode() not in mg.get(f"/v3/domains/{w.a.domain}/webhooks").content
    assert_b_unchanged(in_process, w, before, hooks, sent)


def test_mailgun_account_webhooks_of_another_account_look_missing(in_process: InProcessApp, world: World,
                                                                  hooks: Receiver) -> None:
    w = world
    before, sent = snapshot(in_process, w), b_sends(hooks)
    ghost = uuid.uuid4().hex[:len(w.b_mailgun_group)]  # an id of the same shape that nobody has
    form = {"url": "https://evil.example.com/steal", "event_types": "complained", "description": "mine now"}
    with mailgun(in_process, w.a) as mg:
        v1_calls: list[tuple[str, dict[str, Any], int]] = [("GET", {}, 404), ("PUT", {"data": form}, 404),
                                                            ("DELETE", {}, 404)]
        for method, kwargs, status in v1_calls:
            foreign = mg.request(method, f"/v1/webhooks/{w.b_mailgun_group}", **kwargs)
            missing = mg.request(method, f"/v1/webhooks/{ghost}", **kwargs)
            same_as_missing(foreign, missing, status)
        # filtering or bulk-deleting by B's id behaves as for an unknown id: nothing listed, nothing deleted
        same_as_missing(mg.get("/v1/webhooks", params={"webhook_ids": w.b_mailgun_group}),
                        mg.get("/v1/webhooks", params={"webhook_ids": ghost}), 200)
        assert mg.get("/v1/webhooks", params={"webhook_ids": w.b_mailgun_group}).json() == {"webhooks": []}
        same_as_missing(mg.delete("/v1/webhooks", params={"webhook_ids": w.b_mailgun_group}),
                        mg.delete("/v1/webhooks", params={"webhook_ids": ghost}), 204)
        r = mg.delete("/v1/webhooks", params={"all": "true"})  # A's "all" is A's only
        assert r.status_code == 204
        assert mg.get("/v1/webhooks").json() == {"webhooks": []}
    assert_b_unchanged(in_process, w, before, hooks, sent)


# ---------------------------------------------------------------------------- Kirim dialect
def test_kirim_webhooks_of_another_account_look_missing(in_process: InProcessApp, world: World,
                                                       hooks: Receiver) -> None:
    w, evil = world, "https://evil.example.com/steal"
    before, sent = snapshot(in_process, w), b_sends(hooks)
    ghost_guid = str(uuid.uuid4())
    base = "/api/domains/{d}/webhooks"
    on_domain: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", base, {}, 404),
        ("GET", base, {"params": {"type": "bounced"}}, 404),
        ("POST", base, {"json": {"type": "bounced", "url": evil}}, 404),
        ("POST", base + "/test", {"json": {"url": hooks.url("/b/kirim"), "event_type": "bounced"}}, 404),
        ("GET", base + "/" + w.b_kirim_guid, {}, 404),
        ("PUT", base + "/" + w.b_kirim_guid, {"json": {"url": evil}}, 404),
        ("DELETE", base + "/" + w.b_kirim_guid, {}, 404),
        ("PUT", base + "/" + w.b_disabled_guid, {"json": {"type": "delivered"}}, 404),
    ]
    with kirim(in_process, w.a) as ki:
        # B's domain, any path under it: exactly as for a domain that does not exist
        for method, path, kwargs, status in on_domain:
            foreign = ki.request(method, path.format(d=w.b.domain), **kwargs)
            missing = ki.request(method, path.format(d=w.ghost_domain), **kwargs)
            same_as_missing(foreign, missing, status)
        assert ki.get(f"/api/domains/{w.b.domain}/webhooks").json() == {
            "success": False, "message": "Domain not found or you do not own this domain"}
        # B's webhook guid under A's OWN domain: exactly as for a guid that does not exist
        mine = f"/api/domains/{w.a.domain}/webhooks/"
        for guid in (w.b_kirim_guid, w.b_disabled_guid):
            guid_calls: list[tuple[str, dict[str, Any]]] = [
                ("GET", {}), ("PUT", {"json": {"url": evil}}), ("PUT", {"json": {"type": "opened"}}),
                ("PUT", {"json": {}}), ("DELETE", {})]
            for method, kwargs in guid_calls:
                foreign = ki.request(method, mine + guid, **kwargs)
                missing = ki.request(method, mine + ghost_guid, **kwargs)
                same_as_missing(foreign, missing, 404)
                assert foreign.json() == {"success": False, "message": "Webhook not found"}
        # A's own list shows only A's webhook
        listed = ki.get(f"/api/domains/{w.a.domain}/webhooks").json()
        assert [d["webhook_guid"] for d in listed["data"]] == [w.a_kirim_guid]
    # A's key with B's username is no way in either: the same 401 as a wrong key
    with client(in_process, w.b.username, w.a.api_key) as wrong_user, \
            client(in_process, w.b.username, "mh_nope") as bad:
        same_as_missing(wrong_user.get(f"/api/domains/{w.b.domain}/webhooks"),
                        bad.get(f"/api/domains/{w.b.domain}/webhooks"), 401)
    assert_b_unchanged(in_process, w, before, hooks, sent)


# ---------------------------------------------------------------------------- native API
def test_native_api_hides_another_accounts_events_and_deliveries(in_process: InProcessApp, world: World,
                                                                 hooks: Receiver) -> None:
    w = world
    before, sent = snapshot(in_process, w), b_sends(hooks)
    ghost_guid = str(uuid.uuid4())
    ghost_delivery = max(w.b_delivery_ids) + 10_000_000
    with client(in_process, "api", w.a.api_key) as native:
        pairs: list[tuple[httpx.Response, httpx.Response, int]] = []

        def both(method: str, foreign_path: str, missing_path: str, status: int, **kwargs: Any) -> None:
            pairs.append((native.request(method, foreign_path, **kwargs),
                          native.request(method, missing_path, **kwargs), status))

        for did in w.b_delivery_ids:
            both("GET", f"/v1/deliveries/{did}", f"/v1/deliveries/{ghost_delivery}", 404)
            both("POST", f"/v1/deliveries/{did}/retry", f"/v1/deliveries/{ghost_delivery}/retry", 404)
        for query in ("domain={d}", "domain={d}&status=succeeded"):
            both("GET", "/v1/deliveries?" + query.format(d=w.b.domain),
                 "/v1/deliveries?" + query.format(d=w.ghost_domain), 404)
            both("GET", "/v1/events?" + query.split("&")[0].format(d=w.b.domain),
                 "/v1/events?" + query.split("&")[0].format(d=w.ghost_domain), 404)
        for guid in (w.b_kirim_guid, w.b_disabled_guid):
            both("GET", f"/v1/deliveries?webhook={guid}", f"/v1/deliveries?webhook={ghost_guid}", 200)
            both("POST", f"/v1/subscriptions/{guid}/enable", f"/v1/subscriptions/{ghost_guid}/enable", 404)
        for event_id in w.b_event_ids:
            ghost_event = "b-" + uuid.uuid4().hex[:len(event_id) - 2]
            both("GET", f"/v1/deliveries?event_id={event_id}", f"/v1/deliveries?event_id={ghost_event}", 200)
            both("GET", f"/v1/events?event_id={event_id}", f"/v1/events?event_id={ghost_event}", 200)
        both("POST", f"/v1/domains/{w.b.domain}/deliveries/recover?since=0",
             f"/v1/domains/{w.ghost_domain}/deliveries/recover?since=0", 404)
        # ingest into B's domain, even re-using one of B's event ids: "not found", nothing stored
        for item in ({"event": "clicked", "recipient": "x@y.example"},
                     {"id": w.b_event_ids[0], "event": "clicked", "recipient": "x@y.example"}):
            pairs.append((native.post("/v1/events", json={**item, "domain": w.b.domain}),
                          native.post("/v1/events", json={**item, "domain": w.ghost_domain}), 404))
        pairs.append((native.post("/v1/events", json=[{"domain": w.a.domain, "event": "bounced", "recipient": "a@a"},
                                                      {"domain": w.b.domain, "event": "clicked", "recipient": "x@y"}]),
                      native.post("/v1/events", json=[{"domain": w.a.domain, "event": "bounced", "recipient": "a@a"},
                                                      {"domain": w.ghost_domain, "event": "clicked",
                                                       "recipient": "x@y"}]), 404))
        for foreign, missing, status in pairs:
            same_as_missing(foreign, missing, status)
        # the 200 lists are empty, not merely equal
        assert native.get(f"/v1/deliveries?webhook={w.b_kirim_guid}").json() == {"items": [], "next_cursor": None}
        assert native.get(f"/v1/events?event_id={w.b_event_ids[0]}").json() == {"items": [], "next_cursor": None}
        # A's unfiltered lists hold nothing of B's (A has had no events: the mixed batch above was refused whole)
        assert native.get("/v1/deliveries").json() == {"items": [], "next_cursor": None}
        assert native.get("/v1/events").json() == {"items": [], "next_cursor": None}
    assert_b_unchanged(in_process, w, before, hooks, sent)
