"""The Mailgun dialect against the real app (SQLite and PostgreSQL).

Every call the official ``mailgun`` PyPI SDK 1.10 makes (docs/dialects/mailgun.md) goes through it unchanged and
is checked byte for byte (compact JSON plus ``\\n``, ``application/json; charset=utf-8``). What the SDK
cannot send (the real ``/v4`` paths, ``/v5/accounts/http_signing_key``, multipart bodies as mailgun.js
sends them, the ``…/test`` endpoint, malformed requests) goes through raw httpx.

The app runs in this process (``in_process``): the SDK's ``requests`` session gets a transport adapter
that hands the app the very request the SDK prepared. One lifecycle runs against a real
``mailhooks serve`` over a socket (``test_v3_lifecycle_with_the_sdk_on_a_real_server``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mailgun.client import Client
from mailgun.config import RetryPolicy
from mailgun.security import SecurityGuard

from tests.in_process import InProcessApp
from tests.support import Provisioner, Receiver, ServerProcess, Tenant, free_port

JSON_TYPE = "application/json; charset=utf-8"
A, B, C, D = (f"https://hooks{i}.example.com/mailgun" for i in range(1, 5))


# ---------------------------------------------------------------------------- helpers and fixtures
def compact(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def expect(response: Any, status: int, body: Any) -> None:
    """Status, content type and the exact body: compact JSON then a newline (object key order aside)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == JSON_TYPE
    assert response.json() == body, response.text
    assert response.content == compact(response.json()), response.content


def expect_map(response: Any, webhooks: dict[str, list[str]], status: int = 200) -> None:
    """A v3 list / v4 answer: the whole map; each type's URLs in the order they were added."""
    expect(response, status, {"webhooks": {t: {"urls": urls} for t, urls in webhooks.items()}})


def expect_forbidden(response: Any) -> None:
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["www-authenticate"] == 'Basic realm="MG API"'
    assert response.headers["content-length"] == "9"
    assert response.content == b"Forbidden"


def sdk(target: ServerProcess | InProcessApp, key: str, user: str = "api") -> Client:
    """The official SDK pointed at a real server, or at the app in this process."""
    client = Client(auth=(user, key), api_url=target.base_url, retry_policy=RetryPolicy(max_retries=0))
    if isinstance(target, InProcessApp):
        # The SDK takes no session or transport of its own: mount one on the session it built.
        client._session.mount(target.base_url, target.requests_adapter())
    return client


def multipart(fields: list[tuple[str, str]]) -> list[tuple[str, tuple[None, str]]]:
    """Form fields as multipart parts without filenames, which is how mailgun.js (form-data) sends them."""
    return [(name, (None, value)) for name, value in fields]


@pytest.fixture()
def mg(in_process: InProcessApp, tenant: Tenant) -> Iterator[Client]:
    with sdk(in_process, tenant.api_key) as client:
        yield client


@pytest.fixture()
def http(in_process: InProcessApp, tenant: Tenant) -> Iterator[httpx.Client]:
    with in_process.client(auth=("api", tenant.api_key)) as client:
        yield client


# ---------------------------------------------------------------------------- v3 through the official SDK
def test_v3_lifecycle_with_the_sdk_on_a_real_server(server: ServerProcess, tenant: Tenant) -> None:
    """The smoke over a real socket: the SDK against ``mailhooks serve``, as its users run it."""
    with sdk(server, tenant.api_key) as mg:
        v3_lifecycle(mg, tenant)


def v3_lifecycle(mg: Client, tenant: Tenant) -> None:
    dom = tenant.domain
    expect(mg.domains_webhooks.get(domain=dom), 200, {"webhooks": {}})

    r = mg.domains_webhooks.create(domain=dom, data={"id": "clicked", "url": [A, B]})
    expect(r, 200, {"message": "Webhook has been created", "webhook": {"urls": [A, B]}})
    r = mg.domains_webhooks.create(domain=dom, data={"id": "delivered", "url": C})
    expect(r, 200, {"message": "Webhook has been created", "webhook": {"urls": [C]}})

    expect_map(mg.domains_webhooks.get(domain=dom), {"clicked": [A, B], "delivered": [C]})
    expect(mg.domains_webhooks.get(domain=dom, webhook_name="clicked"), 200, {"webhook": {"urls": [A, B]}})
    expect(mg.domains_webhooks_clicked.get(domain=dom), 200, {"webhook": {"urls": [A, B]}})

    # PUT replaces the whole list; a URL that stays keeps its place
    r = mg.domains_webhooks.put(domain=dom, webhook_name="clicked", data={"url": [B, D]})
    expect(r, 200, {"message": "Webhook has been updated", "webhook": {"urls": [B, D]}})
    r = mg.domains_webhooks.put(domain=dom, webhook_name="clicked", data=[("url", D)])
    expect(r, 200, {"message": "Webhook has been updated", "webhook": {"urls": [D]}})
    expect(mg.domains_webhooks.get(domain=dom, webhook_name="clicked"), 200, {"webhook": {"urls": [D]}})

    # DELETE answers with the URLs it removed
    r = mg.domains_webhooks.delete(domain=dom, webhook_name="clicked")
    expect(r, 200, {"message": "Webhook has been deleted", "webhook": {"urls": [D]}})
    expect_map(mg.domains_webhooks.get(domain=dom), {"delivered": [C]})
    expect(mg.domains_webhooks.get(domain=dom, webhook_name="clicked"), 404, {"message": "Webhook not found"})


def test_v3_every_type_and_three_urls(mg: Client, tenant: Tenant) -> None:
    types = ["accepted", "clicked", "opened", "unsubscribed", "delivered", "permanent_fail", "temporary_fail",
             "complained"]
    for name in types:
        r = mg.domains_webhooks.create(domain=tenant.domain, data={"id": name, "url": [A, B, C]})
        expect(r, 200, {"message": "Webhook has been created", "webhook": {"urls": [A, B, C]}})
    expect_map(mg.domains_webhooks.get(domain=tenant.domain), {name: [A, B, C] for name in types})


def test_v3_put_tolerates_an_id_field_and_duplicate_urls(mg: Client, tenant: Tenant) -> None:
    """Ruby sends ``id=accepted&url=…`` on PUT [VCR]; repeated URLs count once."""
    mg.domains_webhooks.create(domain=tenant.domain, data={"id": "accepted", "url": A})
    r = mg.domains_webhooks.put(domain=tenant.domain, webhook_name="accepted", data={"id": "accepted", "url": [B, B]})
    expect(r, 200, {"message": "Webhook has been updated", "webhook": {"urls": [B]}})
    r = mg.domains_webhooks.create(domain=tenant.domain, data={"id": "opened", "url": [C, C, C, C]})
    expect(r, 200, {"message": "Webhook has been created", "webhook": {"urls": [C]}})


def test_v3_urls_keep_the_order_the_client_gave(mg: Client, http: httpx.Client, tenant: Tenant) -> None:
    """mailgun.js reads ``url`` as ``urls[0]``: a PUT's order must be the order every later GET answers."""
    dom = tenant.domain
    r = mg.domains_webhooks.create(domain=dom, data={"id": "clicked", "url": [C, A, B]})
    expect(r, 200, {"message": "Webhook has been created", "webhook": {"urls": [C, A, B]}})
    expect(mg.domains_webhooks.get(domain=dom, webhook_name="clicked"), 200, {"webhook": {"urls": [C, A, B]}})
    # a PUT that only reorders the same URLs
    r = mg.domains_webhooks.put(domain=dom, webhook_name="clicked", data={"url": [B, C, A]})
    expect(r, 200, {"message": "Webhook has been updated", "webhook": {"urls": [B, C, A]}})
    expect(mg.domains_webhooks.get(domain=dom, webhook_name="clicked"), 200, {"webhook": {"urls": [B, C, A]}})
    expect_map(mg.domains_webhooks.get(domain=dom), {"clicked": [B, C, A]})
    # a new URL placed first, before ones that stay (raw HTTP, repeated fields as mailgun.js sends them)
    r = http.put(f"/v3/domains/{dom}/webhooks/clicked", files=multipart([("url", D), ("url", A)]))
    expect(r, 200, {"message": "Webhook has been updated", "webhook": {"urls": [D, A]}})
    for _ in range(3):  # the same answer on every call
        expect(http.get(f"/v3/domains/{dom}/webhooks/clicked"), 200, {"webhook": {"urls": [D, A]}})
    # v4 additions go after the list as it now stands
    expect_map(http.post(f"/v4/domains/{dom}/webhooks", data={"url": B, "event_types": "clicked"}),
               {"clicked": [D, A, B]})
    # the Kirim view of the same rows is unchanged: one row per URL, listed by creation
    kirim = http.get(f"/api/domains/{dom}/webhooks", auth=(tenant.username, tenant.api_key))
    assert kirim.status_code == 200, kirim.text
    assert [row["url"] for row in kirim.json()["data"]] == [A, D, B]


# ---------------------------------------------------------------------------- v4-style SDK calls on /v3 paths
def test_sdk_v4_calls_on_v3_paths_are_served_as_v4(mg: Client, tenant: Tenant) -> None:
    dom = tenant.domain
    mg.domains_webhooks.create(domain=dom, data={"id": "clicked", "url": A})

    # POST /v3/domains/D/webhooks with url + event_types (repeated): adds the URL to each type
    r = mg.domains_webhooks.create(domain=dom, data={"url": B, "event_types": ["delivered", "clicked"]})
    expect_map(r, {"clicked": [A, B], "delivered": [B]})
    # the README's comma-joined form
    r = mg.domains_webhooks.create(domain=dom, data={"url": C, "event_types": "opened,delivered"})
    expect_map(r, {"clicked": [A, B], "delivered": [B, C], "opened": [C]})

    # PUT /v3/domains/D/webhooks: the URL ends up in exactly the listed types
    r = mg.domains_webhooks.put(domain=dom, data={"url": B, "event_types": ["opened", "complained"]})
    expect_map(r, {"clicked": [A], "delivered": [C], "opened": [C, B], "complained": [B]})

    # DELETE /v3/domains/D/webhooks?url=…&url=…: the URLs leave every type
    r = mg.domains_webhooks.delete(domain=dom, filters={"url": [B, C]})
    expect_map(r, {"clicked": [A]})
    # removing a URL that is nowhere is not an error: the map comes back unchanged
    expect_map(mg.domains_webhooks.delete(domain=dom, filters={"url": D}), {"clicked": [A]})


def test_sdk_v4_call_errors(mg: Client, tenant: Tenant) -> None:
    dom = tenant.domain
    mg.domains_webhooks.create(domain=dom, data={"url": A, "event_types": ["clicked"]})
    r = mg.domains_webhooks.create(domain=dom, data={"url": A, "event_types": ["opened", "clicked"]})
    expect(r, 400, {"message": f"Webhook for event type 'clicked' with URL '{A}' already exists"})
    # nothing of a refused request is kept
    expect_map(mg.domains_webhooks.get(domain=dom), {"clicked": [A]})
    r = mg.domains_webhooks.put(domain=dom, data={"url": B, "event_types": ["opened"]})
    expect(r, 404, {"message": "Webhook not found"})
    r = mg.domains_webhooks.create(domain=dom, data={"url": B, "event_types": ["nope"]})
    expect(r, 400, {"message": "Invalid event type 'nope'"})
    r = mg.domains_webhooks.create(domain=dom, data={"url": [B, C], "event_types": ["opened"]})
    expect(r, 400, {"message": "Only one 'url' is allowed"})
    r = mg.domains_webhooks.put(domain=dom, data={"event_types": ["opened"]})
    expect(r, 400, {"message": "Missing parameter 'url'"})
    r = mg.domains_webhooks.put(domain=dom, data={"url": A})
    expect(r, 400, {"message": "Missing parameter 'event_types'"})
    expect(mg.domains_webhooks.delete(domain=dom), 400, {"message": "Missing parameter 'url'"})


# ---------------------------------------------------------------------------- v1 account webhooks through the SDK
def test_account_webhooks_with_the_sdk(mg: Client) -> None:
    expect(mg.account_webhooks.get(), 200, {"webhooks": []})

    r = mg.account_webhooks.create(data={"url": A, "event_types": ["delivered", "opened"], "description": "first"})
    assert r.status_code == 200 and r.headers["content-type"] == JSON_TYPE and r.content.endswith(b"}\n")
    first = r.json()["webhook_id"]
    assert isinstance(first, str) and first
    expect(r, 200, {"webhook_id": first})
    second = mg.account_webhooks.create(data={"url": B, "event_types": "clicked"}).json()["webhook_id"]
    third = mg.account_webhooks.create(data={"url": C, "event_types": ["click", "bounce"]}).json()["webhook_id"]
    assert len({first, second, third}) == 3

    r = mg.account_webhooks.get(webhook_id=first)
    body = r.json()
    created_at = body["created_at"]
    assert created_at.endswith("Z") and "T" in created_at
    expect(r, 200, {"webhook_id": first, "description": "first", "url": A, "event_types": ["delivered", "opened"],
                    "created_at": created_at})
    listed = mg.account_webhooks.get().json()["webhooks"]
    assert [(w["webhook_id"], w["url"], w["event_types"], w["description"]) for w in listed] == [
        (first, A, ["delivered", "opened"], "first"),
        (second, B, ["clicked"], ""),
        (third, C, ["clicked", "permanent_fail"], ""),
    ]
    r = mg.account_webhooks.get(filters={"webhook_ids": f"{first},{third}"})
    assert [w["webhook_id"] for w in r.json()["webhooks"]] == [first, third]

    # PUT replaces url, types and description: 204 with no body
    r = mg.account_webhooks.put(webhook_id=first, data={"url": D, "event_types": ["complained"], "description": "2"})
    assert r.status_code == 204 and r.content == b""
    got = mg.account_webhooks.get(webhook_id=first).json()
    assert (got["url"], got["event_types"], got["description"]) == (D, ["complained"], "2")
    # a PUT without description keeps the old one
    mg.account_webhooks.put(webhook_id=first, data={"url": D, "event_types": ["accepted"]})
    assert mg.account_webhooks.get(webhook_id=first).json()["description"] == "2"

    r = mg.account_webhooks.delete(webhook_id=second)
    assert r.status_code == 204 and r.content == b""
    expect(mg.account_webhooks.get(webhook_id=second), 404, {"message": "Webhook not found"})
    expect(mg.account_webhooks.delete(webhook_id=second), 404, {"message": "Webhook not found"})

    r = mg.account_webhooks.delete(filters={"webhook_ids": f"{first},{third}"})
    assert r.status_code == 204 and r.content == b""
    expect(mg.account_webhooks.get(), 200, {"webhooks": []})


def test_account_webhooks_delete_all_and_errors(mg: Client) -> None:
    for url in (A, B):
        assert mg.account_webhooks.create(data={"url": url, "event_types": ["opened"]}).status_code == 200
    r = mg.account_webhooks.create(data={"url": A, "event_types": ["opened"]})
    expect(r, 409, {"message": f"Webhook for event type 'opened' with URL '{A}' already exists"})
    mg.account_webhooks.create(data={"url": C, "event_types": ["opened"]})
    r = mg.account_webhooks.create(data={"url": D, "event_types": ["opened"]})
    expect(r, 400, {"message": "Maximum of 3 urls for a given webhook type (opened)"})
    expect(mg.account_webhooks.create(data={"event_types": ["opened"]}), 400, {"message": "Missing parameter 'url'"})
    expect(mg.account_webhooks.create(data={"url": D}), 400, {"message": "Missing parameter 'event_types'"})
    expect(mg.account_webhooks.create(data={"url": "ftp://x.example/", "event_types": ["opened"]}), 400,
           {"message": "The url must use HTTP or HTTPS."})
    expect(mg.account_webhooks.put(webhook_id="nope", data={"url": D, "event_types": ["opened"]}), 404,
           {"message": "Webhook not found"})
    expect(mg.account_webhooks.delete(filters={}), 400, {"message": "Missing parameter 'webhook_ids' or 'all'"})

    r = mg.account_webhooks.delete(filters={"all": "true"})
    assert r.status_code == 204
    expect(mg.account_webhooks.get(), 200, {"webhooks": []})


# ---------------------------------------------------------------------------- the real /v4 paths (raw httpx)
def test_v4_paths(http: httpx.Client, tenant: Tenant) -> None:
    path = f"/v4/domains/{tenant.domain}/webhooks"
    expect_map(http.post(path, data={"url": A, "event_types": ["accepted", "delivered"]}),
               {"accepted": [A], "delivered": [A]})
    expect_map(http.post(path, data={"url": B, "event_types": "delivered,clicked"}),
               {"accepted": [A], "delivered": [A, B], "clicked": [B]})
    expect_map(http.post(path, data={"url": C, "event_types": ["clicked"]}),
               {"accepted": [A], "delivered": [A, B], "clicked": [B, C]})
    expect(http.post(path, data={"url": B, "event_types": ["clicked"]}), 400,
           {"message": f"Webhook for event type 'clicked' with URL '{B}' already exists"})

    expect_map(http.put(path, data={"url": A, "event_types": ["opened", "delivered"]}),
               {"delivered": [A, B], "clicked": [B, C], "opened": [A]})
    expect(http.put(path, data={"url": D, "event_types": ["opened"]}), 404, {"message": "Webhook not found"})

    # repeated and comma-separated url on DELETE, both at once
    r = http.request("DELETE", path, params=[("url", A), ("url", f"{B},{D}")])
    expect_map(r, {"clicked": [C]})
    expect(http.delete(path), 400, {"message": "Missing parameter 'url'"})
    expect_map(http.delete(path, params={"url": C}), {})


def test_v4_three_url_limit(http: httpx.Client, tenant: Tenant) -> None:
    path = f"/v4/domains/{tenant.domain}/webhooks"
    for url in (A, B, C):
        assert http.post(path, data={"url": url, "event_types": ["opened"]}).status_code == 200
    expect(http.post(path, data={"url": D, "event_types": ["clicked", "opened"]}), 400,
           {"message": "Maximum of 3 urls for a given webhook type (opened)"})
    http.post(path, data={"url": D, "event_types": ["clicked"]})
    expect(http.put(path, data={"url": D, "event_types": ["opened"]}), 400,
           {"message": "Maximum of 3 urls for a given webhook type (opened)"})
    expect_map(http.get(f"/v3/domains/{tenant.domain}/webhooks"), {"opened": [A, B, C], "clicked": [D]})


# ---------------------------------------------------------------------------- multipart, as mailgun.js sends it
def test_multipart_bodies_everywhere(http: httpx.Client, mg: Client, tenant: Tenant) -> None:
    base = f"/v3/domains/{tenant.domain}/webhooks"
    r = http.post(base, files=multipart([("id", "clicked"), ("url", A), ("url", B)]))
    assert r.request.headers["content-type"].startswith("multipart/form-data; boundary=")
    expect(r, 200, {"message": "Webhook has been created", "webhook": {"urls": [A, B]}})
    r = http.put(f"{base}/clicked", files=multipart([("url", C)]))
    expect(r, 200, {"message": "Webhook has been updated", "webhook": {"urls": [C]}})
    r = http.post(f"/v4/domains/{tenant.domain}/webhooks",
                  files=multipart([("url", D), ("event_types", "opened"), ("event_types", "clicked")]))
    expect_map(r, {"clicked": [C, D], "opened": [D]})
    r = http.put(f"/v4/domains/{tenant.domain}/webhooks", files=multipart([("url", D), ("event_types", "opened")]))
    expect_map(r, {"clicked": [C], "opened": [D]})
    r = http.post("/v1/webhooks", files=multipart([("url", A), ("event_types", "delivered"),
                                                   ("description", "multi")]))
    webhook_id = r.json()["webhook_id"]
    expect(r, 200, {"webhook_id": webhook_id})
    r = http.put(f"/v1/webhooks/{webhook_id}", files=multipart([("url", B), ("event_types", "accepted")]))
    assert r.status_code == 204
    assert mg.account_webhooks.get(webhook_id=webhook_id).json()["event_types"] == ["accepted"]

    # the SDK's own multipart path (files=) works too
    r = mg.domains_webhooks.create(domain=tenant.domain, files=multipart([("id", "complained"), ("url", A)]))
    expect(r, 200, {"message": "Webhook has been created", "webhook": {"urls": [A]}})

    # mailgun.js sends GET and DELETE with a urlencoded Content-Type and an empty body
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    expect(http.get(f"{base}/clicked", headers=form), 200, {"webhook": {"urls": [C]}})
    r = http.request("DELETE", f"{base}/clicked", headers=form, content=b"")
    expect(r, 200, {"message": "Webhook has been deleted", "webhook": {"urls": [C]}})


# ---------------------------------------------------------------------------- legacy names
@pytest.mark.parametrize(("legacy", "new"), [
    ("click", "clicked"), ("open", "opened"), ("unsubscribe", "unsubscribed"), ("deliver", "delivered"),
    ("spam", "complained"), ("bounce", "permanent_fail"), ("drop", "permanent_fail"),
])
def test_legacy_names_are_aliases(mg: Client, http: httpx.Client, tenant: Tenant, legacy: str, new: str) -> None:
    dom = tenant.domain
    r = mg.domains_webhooks.create(domain=dom, data={"id": legacy, "url": A})
    expect(r, 200, {"message": "Webhook has been created", "webhook": {"urls": [A]}})
    expect_map(mg.domains_webhooks.get(domain=dom), {new: [A]})
    expect(mg.domains_webhooks.get(domain=dom, webhook_name=legacy), 200, {"webhook": {"urls": [A]}})
    expect(mg.domains_webhooks.get(domain=dom, webhook_name=new), 200, {"webhook": {"urls": [A]}})
    r = mg.domains_webhooks.create(domain=dom, data={"id": new, "url": B})
    expect(r, 400, {"message": "Webhook already exists"})
    r = mg.domains_webhooks.put(domain=dom, webhook_name=legacy, data={"url": B})
    expect(r, 200, {"message": "Webhook has been updated", "webhook": {"urls": [B]}})
    expect_map(http.post(f"/v4/domains/{dom}/webhooks", data={"url": C, "event_types": legacy}), {new: [B, C]})
    r = mg.domains_webhooks.delete(domain=dom, webhook_name=legacy)
    expect(r, 200, {"message": "Webhook has been deleted", "webhook": {"urls": [B, C]}})
    expect(mg.domains_webhooks.get(domain=dom), 200, {"webhooks": {}})


def test_bounce_and_drop_share_permanent_fail(mg: Client, tenant: Tenant) -> None:
    mg.domains_webhooks.create(domain=tenant.domain, data={"id": "bounce", "url": A})
    expect(mg.domains_webhooks.create(domain=tenant.domain, data={"id": "drop", "url": B}), 400,
           {"message": "Webhook already exists"})


# ---------------------------------------------------------------------------- v5 signing key (raw httpx)
def test_signing_key_get_and_regenerate(http: httpx.Client, tenant: Tenant) -> None:
    expect(http.get("/v5/accounts/http_signing_key"), 200, {"http_signing_key": tenant.signing_key})
    # mailgun.js: POST with a urlencoded Content-Type and an empty body
    r = http.post("/v5/accounts/http_signing_key", headers={"Content-Type": "application/x-www-form-urlencoded"})
    new_key = r.json()["http_signing_key"]
    assert new_key != tenant.signing_key and new_key.startswith("key-") and len(new_key) == 36
    int(new_key[4:], 16)
    expect(r, 200, {"message": "regenerated HTTP signing key for account", "http_signing_key": new_key})
    expect(http.get("/v5/accounts/http_signing_key"), 200, {"http_signing_key": new_key})
    # the same request without any Content-Type (curl -X POST)
    r = http.post("/v5/accounts/http_signing_key")
    assert r.status_code == 200 and r.json()["http_signing_key"] not in (new_key, tenant.signing_key)


def test_sdk_cannot_reach_the_signing_key(mg: Client) -> None:
    """Quirk 3: the SDK turns underscores into slashes; that path is simply not found, in Mailgun's shape."""
    expect(mg.accounts_http_signing_key.get(), 404, {"message": "Not Found"})


# ---------------------------------------------------------------------------- authentication
def test_bad_credentials_are_a_plain_forbidden(in_process: InProcessApp, tenant: Tenant) -> None:
    dom = tenant.domain
    with sdk(in_process, "wrong-key") as bad:
        expect_forbidden(bad.domains_webhooks.get(domain=dom))
        expect_forbidden(bad.domains_webhooks.create(domain=dom, data={"id": "clicked", "url": A}))
        expect_forbidden(bad.account_webhooks.get())
    with sdk(in_process, tenant.api_key, user=tenant.username) as wrong_user:
        expect_forbidden(wrong_user.domains_webhooks.get(domain=dom))
        expect_forbidden(wrong_user.account_webhooks.get())
    with in_process.client() as anonymous:
        check_forbidden_everywhere(anonymous, tenant)


def check_forbidden_everywhere(anonymous: httpx.Client, tenant: Tenant) -> None:
    dom = tenant.domain
    for method, path in [("GET", f"/v3/domains/{dom}/webhooks"), ("GET", f"/v3/domains/{dom}/webhooks/clicked"),
                         ("PUT", f"/v3/domains/{dom}/webhooks/clicked/test"), ("POST", f"/v4/domains/{dom}/webhooks"),
                         ("GET", "/v1/webhooks"), ("DELETE", "/v1/webhooks/x"),
                         ("GET", "/v5/accounts/http_signing_key"), ("POST", "/v5/accounts/http_signing_key")]:
        expect_forbidden(anonymous.request(method, path))
        expect_forbidden(anonymous.request(method, path, auth=("api", "")))
        expect_forbidden(anonymous.request(method, path, headers={"Authorization": f"Bearer {tenant.api_key}"}))
        expect_forbidden(anonymous.request(method, path, headers={"Authorization": "Basic !!not-base64"}))
        expect_forbidden(anonymous.request(method, path, auth=("API", tenant.api_key)))
    # and the foreign or unknown domain is not even looked at before the key is
    expect_forbidden(anonymous.get("/v3/domains/nowhere.example/webhooks"))


# ---------------------------------------------------------------------------- docs/dialects/mailgun.md#errors
def test_unknown_and_foreign_domains_are_not_found(mg: Client, http: httpx.Client, provision: Provisioner,
                                                  in_process: InProcessApp) -> None:
    other = provision.tenant()
    with in_process.client(auth=("api", other.api_key)) as theirs:
        theirs.post(f"/v3/domains/{other.domain}/webhooks", data={"id": "clicked", "url": A})
    not_found = {"message": "Domain not found"}
    for dom in ("nowhere.example", other.domain, other.domain.upper()):
        expect(mg.domains_webhooks.get(domain=dom), 404, not_found)
        expect(mg.domains_webhooks.get(domain=dom, webhook_name="clicked"), 404, not_found)
        expect(mg.domains_webhooks.create(domain=dom, data={"id": "opened", "url": B}), 404, not_found)
        expect(mg.domains_webhooks.put(domain=dom, webhook_name="clicked", data={"url": B}), 404, not_found)
        expect(mg.domains_webhooks.delete(domain=dom, webhook_name="clicked"), 404, not_found)
        expect(mg.domains_webhooks.create(domain=dom, data={"url": B, "event_types": "clicked"}), 404, not_found)
        expect(mg.domains_webhooks.delete(domain=dom, filters={"url": A}), 404, not_found)
        expect(http.post(f"/v4/domains/{dom}/webhooks", data={"url": B, "event_types": "opened"}), 404, not_found)
        expect(http.put(f"/v4/domains/{dom}/webhooks", data={"url": A, "event_types": "opened"}), 404, not_found)
        expect(http.delete(f"/v4/domains/{dom}/webhooks", params={"url": A}), 404, not_found)
        expect(http.put(f"/v3/domains/{dom}/webhooks/clicked/test", data={"url": A}), 404, not_found)
    # the other account's webhook is untouched
    with in_process.client(auth=("api", other.api_key)) as theirs:
        expect(theirs.get(f"/v3/domains/{other.domain}/webhooks"), 200, {"webhooks": {"clicked": {"urls": [A]}}})


def test_foreign_account_webhooks_are_not_found(mg: Client, in_process: InProcessApp,
                                                provision: Provisioner) -> None:
    other = provision.tenant()
    with sdk(in_process, other.api_key) as theirs:
        their_id = theirs.account_webhooks.create(data={"url": A, "event_types": "opened"}).json()["webhook_id"]
        expect(mg.account_webhooks.get(webhook_id=their_id), 404, {"message": "Webhook not found"})
        expect(mg.account_webhooks.put(webhook_id=their_id, data={"url": B, "event_types": "opened"}), 404,
               {"message": "Webhook not found"})
        expect(mg.account_webhooks.delete(webhook_id=their_id), 404, {"message": "Webhook not found"})
        assert mg.account_webhooks.delete(filters={"webhook_ids": their_id}).status_code == 204
        assert mg.account_webhooks.delete(filters={"all": "true"}).status_code == 204
        expect(mg.account_webhooks.get(filters={"webhook_ids": their_id}), 200, {"webhooks": []})
        assert [w["webhook_id"] for w in theirs.account_webhooks.get().json()["webhooks"]] == [their_id]


def test_unconfigured_type_is_not_found(mg: Client, http: httpx.Client, tenant: Tenant) -> None:
    dom = tenant.domain
    mg.domains_webhooks.create(domain=dom, data={"id": "opened", "url": A})
    not_found = {"message": "Webhook not found"}
    expect(mg.domains_webhooks.get(domain=dom, webhook_name="clicked"), 404, not_found)
    expect(mg.domains_webhooks.put(domain=dom, webhook_name="clicked", data={"url": A}), 404, not_found)
    expect(mg.domains_webhooks.delete(domain=dom, webhook_name="clicked"), 404, not_found)
    expect(http.put(f"/v3/domains/{dom}/webhooks/clicked/test"), 404, not_found)
    expect_map(mg.domains_webhooks.get(domain=dom), {"opened": [A]})


def test_create_errors(mg: Client, http: httpx.Client, tenant: Tenant) -> None:
    dom = tenant.domain
    base = f"/v3/domains/{dom}/webhooks"
    mg.domains_webhooks.create(domain=dom, data={"id": "clicked", "url": A})
    expect(mg.domains_webhooks.create(domain=dom, data={"id": "clicked", "url": B}), 400,
           {"message": "Webhook already exists"})
    expect(mg.domains_webhooks.create(domain=dom, data={"url": B}), 400, {"message": "Missing parameter 'id'"})
    expect(mg.domains_webhooks.create(domain=dom, data={"id": "", "url": B}), 400,
           {"message": "Missing parameter 'id'"})
    expect(mg.domains_webhooks.create(domain=dom, data={"id": "opened"}), 400, {"message": "Missing parameter 'url'"})
    expect(mg.domains_webhooks.create(domain=dom, data={"id": "opened", "url": " "}), 400,
           {"message": "Missing parameter 'url'"})
    expect(mg.domains_webhooks.create(domain=dom, data={}), 400, {"message": "Missing parameter 'id'"})
    expect(mg.domains_webhooks.create(domain=dom, data={"id": "opened", "url": [A, B, C, D]}), 400,
           {"message": "Maximum of 3 urls for a given webhook type (opened)"})
    for name in ("state_change", "failed", "Clicked", "bounced"):
        expect(mg.domains_webhooks.create(domain=dom, data={"id": name, "url": A}), 400,
               {"message": f"Invalid webhook name '{name}'"})
    for bad in ("ftp://hooks.example.com/x", "javascript:alert(1)", "hooks.example.com/x", "mailto:a@b.example"):
        expect(mg.domains_webhooks.create(domain=dom, data={"id": "opened", "url": bad}), 400,
               {"message": "The url must use HTTP or HTTPS."})
    for bad in ("https://", "http:///path", "https://exa mple.com/", "https://host:99999/"):
        expect(mg.domains_webhooks.create(domain=dom, data={"id": "opened", "url": bad}), 400,
               {"message": "The url must be a valid URL."})
    expect(mg.domains_webhooks.create(domain=dom, data={"id": "opened", "url": [A, "ftp://x.example/"]}), 400,
           {"message": "The url must use HTTP or HTTPS."})
    expect(mg.domains_webhooks.create(domain=dom, data={"id": "opened", "url": A, "urls": B}), 400,
           {"message": "Unknown parameter 'urls'"})
    expect(http.post(base, data={"id": "opened", "url": "https://x.example/" + "a" * 2100}), 400,
           {"message": "The url may not be greater than 2048 characters."})
    # nothing of it was stored
    expect_map(mg.domains_webhooks.get(domain=dom), {"clicked": [A]})


def test_update_errors(mg: Client, tenant: Tenant) -> None:
    dom = tenant.domain
    mg.domains_webhooks.create(domain=dom, data={"id": "clicked", "url": A})
    put = mg.domains_webhooks.put
    expect(put(domain=dom, webhook_name="clicked", data={}), 400, {"message": "Missing parameter 'url'"})
    expect(put(domain=dom, webhook_name="clicked", data={"url": [A, B, C, D]}), 400,
           {"message": "Maximum of 3 urls for a given webhook type (clicked)"})
    expect(put(domain=dom, webhook_name="clicked", data={"url": "gopher://x.example/"}), 400,
           {"message": "The url must use HTTP or HTTPS."})
    expect(put(domain=dom, webhook_name="nope", data={"url": B}), 400, {"message": "Invalid webhook name 'nope'"})
    expect(mg.domains_webhooks.get(domain=dom, webhook_name="nope"), 400, {"message": "Invalid webhook name 'nope'"})
    expect(mg.domains_webhooks.delete(domain=dom, webhook_name="nope"), 400,
           {"message": "Invalid webhook name 'nope'"})
    expect(mg.domains_webhooks.get(domain=dom, webhook_name="clicked"), 200, {"webhook": {"urls": [A]}})


def test_malformed_requests_get_mailgun_4xx(http: httpx.Client, tenant: Tenant) -> None:
    base = f"/v3/domains/{tenant.domain}/webhooks"
    r = http.post(base, json={"id": "clicked", "url": A})
    assert r.status_code == 400 and r.headers["content-type"] == JSON_TYPE
    assert r.json()["message"].startswith("Unsupported Content-Type 'application/json'")
    urlencoded = {"Content-Type": "application/x-www-form-urlencoded"}
    r = http.post(base, content=b"id=clicked&url=\xff\xfe", headers=urlencoded)
    expect(r, 400, {"message": "The body is not valid UTF-8 form data"})
    r = http.post(base, content=b"--x\r\nbroken", headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 400 and r.headers["content-type"] == JSON_TYPE and "message" in r.json()
    r = http.post(base, files={"url": ("hook.txt", b"https://a.example/", "text/plain")}, data={"id": "clicked"})
    assert r.status_code == 400 and r.headers["content-type"] == JSON_TYPE and "files" in r.json()["message"]
    r = http.post(base, content=b"id=clicked&url=" + b"a" * (1024 * 1024 + 10), headers=urlencoded)
    expect(r, 413, {"message": f"Request body larger than {1024 * 1024} bytes"})
    expect(http.get(f"{base}/clicked/extra"), 404, {"message": "Not Found"})
    expect(http.patch(base), 405, {"message": "Method Not Allowed"})
    # a name that cannot be a domain is not one of the account's domains either
    expect(http.get(f"/v3/domains/{'a' * 300}/webhooks"), 404, {"message": "Domain not found"})
    expect(http.get(base), 200, {"webhooks": {}})


# ---------------------------------------------------------------------------- PUT …/{name}/test
def _verify_signed(received: Any, signing_key: str) -> dict[str, Any]:
    assert received.headers["Content-Type"].startswith("application/json")
    body = json.loads(received.body)
    assert set(body) == {"signature", "event-data"}
    sig = body["signature"]
    assert isinstance(sig["timestamp"], str) and len(sig["token"]) == 50
    assert SecurityGuard.verify_webhook(signing_key, sig["token"], sig["timestamp"], sig["signature"])
    assert not SecurityGuard.verify_webhook("key-" + "0" * 32, sig["token"], sig["timestamp"], sig["signature"])
    return body["event-data"]  # type: ignore[no-any-return]


def test_test_endpoint_posts_a_signed_sample(http: httpx.Client, tenant: Tenant, receiver: Receiver) -> None:
    dom = tenant.domain
    url = receiver.url(f"/test-{tenant.username}")
    # mailgun.js: create(domain, id, url, true) → PUT …/clicked/test, multipart url
    r = http.put(f"/v3/domains/{dom}/webhooks/click/test", files=multipart([("url", url)]))
    expect(r, 200, {"code": 200, "message": f"Webhook test succeeded: {url} answered 200"})
    (got,) = receiver.wait_for(f"/test-{tenant.username}", 1)
    event = _verify_signed(got, tenant.signing_key)
    assert event["event"] == "clicked" and event["url"] == "https://example.com/"
    assert event["domain"] == {"name": dom}
    assert isinstance(event["timestamp"], float) and event["id"]
    # nothing was subscribed by testing
    expect(http.get(f"/v3/domains/{dom}/webhooks"), 200, {"webhooks": {}})

    # without a url: the type's first configured URL; permanent_fail is a failed event of permanent severity
    configured = receiver.url(f"/configured-{tenant.username}")
    http.post(f"/v3/domains/{dom}/webhooks", data={"id": "permanent_fail", "url": [configured, A]})
    r = http.put(f"/v3/domains/{dom}/webhooks/permanent_fail/test")
    expect(r, 200, {"code": 200, "message": f"Webhook test succeeded: {configured} answered 200"})
    (got,) = receiver.wait_for(f"/configured-{tenant.username}", 1)
    event = _verify_signed(got, tenant.signing_key)
    assert (event["event"], event["severity"]) == ("failed", "permanent")
    # as real permanent failures say it (django-anymail maps "bounce" to bounced, "generic" to other)
    assert event["reason"] == "bounce" and event["delivery-status"]["code"] == 550
    r = http.put(f"/v3/domains/{dom}/webhooks/temporary_fail/test", data={"url": configured})
    assert r.json()["code"] == 200
    event = _verify_signed(receiver.wait_for(f"/configured-{tenant.username}", 2)[1], tenant.signing_key)
    assert (event["event"], event["severity"], event["reason"]) == ("failed", "temporary", "generic")

    # a regenerated signing key signs the next test
    new_key = http.post("/v5/accounts/http_signing_key").json()["http_signing_key"]
    r = http.put(f"/v3/domains/{dom}/webhooks/opened/test", data={"url": url})
    assert r.json()["code"] == 200
    got = receiver.wait_for(f"/test-{tenant.username}", 2)[1]
    assert _verify_signed(got, new_key)["event"] == "opened"


def test_test_endpoint_reports_failures(http: httpx.Client, tenant: Tenant, receiver: Receiver) -> None:
    dom = tenant.domain
    path = f"/failing-{tenant.username}"
    receiver.script(path, [503])
    r = http.put(f"/v3/domains/{dom}/webhooks/delivered/test", data={"url": receiver.url(path)})
    expect(r, 200, {"code": 503, "message": f"Webhook test failed: {receiver.url(path)} answered 503"})
    assert len(receiver.wait_for(path, 1)) == 1  # a test is one attempt, never retried

    closed = f"http://127.0.0.1:{free_port()}/nobody"
    r = http.put(f"/v3/domains/{dom}/webhooks/delivered/test", data={"url": closed})
    assert r.status_code == 200 and r.headers["content-type"] == JSON_TYPE
    body = r.json()
    assert body["code"] == 0 and body["message"].startswith("Webhook test failed: ")
    expect(http.put(f"/v3/domains/{dom}/webhooks/delivered/test", data={"url": "ftp://x.example/"}), 400,
           {"message": "The url must use HTTP or HTTPS."})
    expect(http.put(f"/v3/domains/{dom}/webhooks/nope/test", data={"url": A}), 400,
           {"message": "Invalid webhook name 'nope'"})


# ---------------------------------------------------------------------------- private targets refused
PRIVATE_TARGETS = ["http://127.0.0.1:9/x", "http://localhost:9/x", "http://10.1.2.3/x", "http://[::1]:9/x",
                   "http://169.254.169.254/latest/meta-data/", "http://192.168.0.10/x", "http://0.0.0.0:9/x"]


def test_private_targets_are_refused_when_not_allowed(strict_in_process: InProcessApp, tenant: Tenant) -> None:
    dom = tenant.domain
    with sdk(strict_in_process, tenant.api_key) as mg, strict_in_process.client(auth=("api", tenant.api_key)) as http:
        mg.domains_webhooks.create(domain=dom, data={"id": "opened", "url": A})
        group = mg.account_webhooks.create(data={"url": A, "event_types": "opened"}).json()["webhook_id"]
        for url in PRIVATE_TARGETS:
            answers = [
                mg.domains_webhooks.create(domain=dom, data={"id": "clicked", "url": url}),
                mg.domains_webhooks.create(domain=dom, data={"id": "clicked", "url": [A, url]}),
                mg.domains_webhooks.put(domain=dom, webhook_name="opened", data={"url": url}),
                mg.domains_webhooks.create(domain=dom, data={"url": url, "event_types": "clicked"}),
                http.post(f"/v4/domains/{dom}/webhooks", data={"url": url, "event_types": "clicked"}),
                mg.account_webhooks.create(data={"url": url, "event_types": "clicked"}),
                mg.account_webhooks.put(webhook_id=group, data={"url": url, "event_types": "clicked"}),
                http.put(f"/v3/domains/{dom}/webhooks/opened/test", data={"url": url}),
            ]
            for r in answers:
                assert r.status_code == 400, (url, r.request.method, r.request.url, r.text)
                assert r.headers["content-type"] == JSON_TYPE
                message = r.json()["message"]
                assert message.startswith("The url resolves to a private or loopback address ("), (url, message)
                assert message.endswith("), which is not allowed."), (url, message)
        expect_map(mg.domains_webhooks.get(domain=dom), {"opened": [A]})
        assert mg.account_webhooks.get(webhook_id=group).json()["url"] == A
        # a public literal address is fine
        public = "http://93.184.215.14/hook"
        r = mg.domains_webhooks.create(domain=dom, data={"id": "clicked", "url": public})
        expect(r, 200, {"message": "Webhook has been created", "webhook": {"urls": [public]}})


# ---------------------------------------------------------------------------- rules hold under concurrency
def test_concurrent_changes_keep_the_rules(in_process: InProcessApp, tenant: Tenant) -> None:
    """Many clients at once: one v3 create per type wins, a URL is never subscribed twice to a type, and no
    type ever gets more than 3 URLs (the check and the write are one step)."""
    base = f"/v3/domains/{tenant.domain}/webhooks"
    v4 = f"/v4/domains/{tenant.domain}/webhooks"
    requests: list[tuple[str, str, dict[str, str]]] = [
        *[("POST", base, {"id": "clicked", "url": f"https://c{i}.example.com/"}) for i in range(6)],
        *[("POST", v4, {"url": f"https://o{i}.example.com/", "event_types": "opened"}) for i in range(6)],
        *[("POST", v4, {"url": A, "event_types": "delivered"}) for _ in range(6)],
        *[("POST", "/v1/webhooks", {"url": f"https://a{i}.example.com/", "event_types": "accepted"})
          for i in range(6)],
        *[("POST", "/v1/webhooks", {"url": B, "event_types": "complained"}) for _ in range(6)],
    ]

    async def burst() -> list[int]:
        async with in_process.async_client(auth=("api", tenant.api_key)) as client:
            answers = await asyncio.gather(*(client.request(m, p, data=d) for m, p, d in requests))
        return [r.status_code for r in answers]

    codes = asyncio.run(burst())
    assert sorted(codes[0:6]) == [200] + [400] * 5
    assert sorted(codes[6:12]) == [200] * 3 + [400] * 3
    assert sorted(codes[12:18]) == [200] + [400] * 5
    assert sorted(codes[18:24]) == [200] * 3 + [400] * 3
    assert sorted(codes[24:30]) == [200] + [409] * 5
    with in_process.client(auth=("api", tenant.api_key)) as http:
        listed = http.get(base).json()["webhooks"]
        assert len(listed["clicked"]["urls"]) == 1 and len(listed["opened"]["urls"]) == 3
        assert listed["delivered"]["urls"] == [A]
        groups = http.get("/v1/webhooks").json()["webhooks"]
        assert sorted(len([g for g in groups if t in g["event_types"]]) for t in ("accepted", "complained")) == [1, 3]


def test_nul_and_odd_characters_are_answered_not_crashed_on(mg: Client, http: httpx.Client, tenant: Tenant) -> None:
    """PostgreSQL refuses NUL in text: such input must get Mailgun's 4xx, on both backends alike."""
    for dom in ("a%00b.example", "%00", "a%0Ab.example", "%C3%A9.example", "a" * 300):
        expect(http.get(f"/v3/domains/{dom}/webhooks"), 404, {"message": "Domain not found"})
        expect(http.post(f"/v4/domains/{dom}/webhooks", data={"url": A, "event_types": "opened"}), 404,
               {"message": "Domain not found"})
    # domain names are case-insensitive and may carry the root's trailing dot
    expect(mg.domains_webhooks.get(domain=tenant.domain.upper() + "."), 200, {"webhooks": {}})
    for webhook_id in ("a%00b", "%00", "x" * 100):
        expect(http.get(f"/v1/webhooks/{webhook_id}"), 404, {"message": "Webhook not found"})
        expect(http.put(f"/v1/webhooks/{webhook_id}", data={"url": A, "event_types": "opened"}), 404,
               {"message": "Webhook not found"})
        expect(http.delete(f"/v1/webhooks/{webhook_id}"), 404, {"message": "Webhook not found"})
    expect(http.get("/v1/webhooks", params={"webhook_ids": "a\x00b"}), 200, {"webhooks": []})
    assert http.delete("/v1/webhooks", params={"webhook_ids": "a\x00b"}).status_code == 204
    expect(mg.account_webhooks.create(data={"url": A, "event_types": "opened", "description": "a\x00b"}), 400,
           {"message": "The description may not contain NUL characters."})
    expect(mg.domains_webhooks.create(domain=tenant.domain, data={"id": "clicked", "url": "https://a.example/\x00"}),
           400, {"message": "The url must be a valid URL."})
    expect(mg.domains_webhooks.delete(domain=tenant.domain, filters={"url": "https://a.example/\x00"}), 200,
           {"webhooks": {}})
    expect(mg.account_webhooks.get(), 200, {"webhooks": []})
