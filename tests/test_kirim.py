"""The Kirim.Email dialect against the real app (SQLite and PostgreSQL).

Shapes, statuses and messages are those of docs/dialects/kirimemail.md, its decisions included (also in
the README). Raw httpx checks them against the app in this process (``in_process``); the PyPI
``kirimemail-smtp-sdk`` 1.5.0, which opens its own connections, drives every webhook call against a real
``mailhooks serve`` through a two-line shim for its known bugs (docs/dialects/kirimemail.md#the-official-sdks).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kirimemail_smtp import SmtpClient, WebhooksApi
from kirimemail_smtp.exceptions import (
    ApiException,
    AuthenticationException,
    NotFoundException,
    ValidationException,
)
from kirimemail_smtp.models import Webhook as SdkWebhook
from standardwebhooks import Webhook as StandardWebhook

from mailhooks.core.payloads import kirim_signature
from tests.in_process import InProcessApp
from tests.support import Provisioner, Receiver, ServerProcess, Tenant, free_port

JSON_TYPE = "application/json"
A, B, C, D = (f"https://hooks{i}.example.com/kirim" for i in range(1, 5))
KIRIM_TYPES = ["queued", "send", "delivered", "bounced", "failed", "permanent_fail", "opened", "clicked",
               "unsubscribed", "temporary_fail", "deferred"]

UNAUTHORIZED = {"success": False, "message": "Unauthorized"}
DOMAIN_NOT_FOUND = {"success": False, "message": "Domain not found or you do not own this domain"}
WEBHOOK_NOT_FOUND = {"success": False, "message": "Webhook not found"}
DELETED = {"success": True, "message": "Webhook deleted successfully."}
MAX_BYTES = 1024 * 1024


# ---------------------------------------------------------------------------- helpers and fixtures
def expect(response: httpx.Response, status: int, body: Any) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == JSON_TYPE
    assert response.json() == body, response.text
    return body


def invalid(errors: dict[str, list[str]]) -> dict[str, Any]:
    return {"success": False, "message": "Validation failed.", "errors": errors}


def hooks(domain: str) -> str:
    return f"/api/domains/{domain}/webhooks"


def webhook(tenant: Tenant, data: dict[str, Any], event_type: str, url: str) -> dict[str, Any]:
    """The 9-key webhook object the server must answer with, given its generated guid and timestamps."""
    uuid.UUID(data["webhook_guid"])
    now = time.time()
    for key in ("created_at", "modified_at"):
        assert isinstance(data[key], int) and now - 120 < data[key] <= now + 1, data
    assert data["modified_at"] >= data["created_at"]
    SdkWebhook.model_validate(data)  # the vendor SDK's own model accepts it
    return {
        "webhook_guid": data["webhook_guid"],
        "user_guid": tenant.account_guid,
        "user_domain_guid": tenant.domain_guids[tenant.domain],
        "user_smtp_guid": None,
        "type": event_type,
        "url": url,
        "is_deleted": False,
        "created_at": data["created_at"],
        "modified_at": data["modified_at"],
    }


def create(kirim: httpx.Client, tenant: Tenant, event_type: str, url: str) -> dict[str, Any]:
    """Create through the API; check the exact 201 and return the webhook object."""
    r = kirim.post(hooks(tenant.domain), json={"type": event_type, "url": url})
    assert r.status_code == 201, r.text
    row = webhook(tenant, r.json()["data"], event_type, url)
    expect(r, 201, {"success": True, "message": "Webhook created successfully.", "data": row})
    return row


def listed(kirim: httpx.Client, tenant: Tenant, **params: str) -> list[dict[str, Any]]:
    r = kirim.get(hooks(tenant.domain), params=params)
    data = r.json()["data"]
    expect(r, 200, {"success": True, "data": data, "count": len(data)})
    return data  # type: ignore[no-any-return]


def client_for(app: InProcessApp, username: str, key: str) -> httpx.Client:
    return app.client(auth=(username, key))


@pytest.fixture()
def kirim(in_process: InProcessApp, tenant: Tenant) -> Iterator[httpx.Client]:
    with client_for(in_process, tenant.username, tenant.api_key) as client:
        yield client


# ------------------------------------------------------------- lifecycle (raw HTTP): docs/dialects/kirimemail.md#routes
def test_create_get_list_update_delete(kirim: httpx.Client, tenant: Tenant) -> None:
    base = hooks(tenant.domain)
    expect(kirim.get(base), 200, {"success": True, "data": [], "count": 0})

    first = create(kirim, tenant, "delivered", A)
    second = create(kirim, tenant, "bounced", B)
    assert first["webhook_guid"] != second["webhook_guid"]
    expect(kirim.get(f"{base}/{first['webhook_guid']}"), 200, {"success": True, "data": first})
    # the guid is a UUID: its upper-case spelling names the same webhook
    expect(kirim.get(f"{base}/{first['webhook_guid'].upper()}"), 200, {"success": True, "data": first})
    expect(kirim.get(base), 200, {"success": True, "data": [first, second], "count": 2})

    time.sleep(1.05)  # timestamps are whole seconds: let modified_at move on
    guid = first["webhook_guid"]
    updated = {"success": True, "message": "Webhook updated successfully."}
    # only url
    r = kirim.put(f"{base}/{guid}", json={"url": C})
    row = r.json()["data"]
    assert row["modified_at"] > row["created_at"] == first["created_at"]
    after_url = {**first, "url": C, "modified_at": row["modified_at"]}
    expect(r, 200, {**updated, "data": after_url})
    # only type
    r = kirim.put(f"{base}/{guid}", json={"type": "opened"})
    after_type = {**after_url, "type": "opened", "modified_at": r.json()["data"]["modified_at"]}
    expect(r, 200, {**updated, "data": after_type})
    # both
    r = kirim.put(f"{base}/{guid}", json={"type": "temporary_fail", "url": D})
    after_both = {**after_type, "type": "temporary_fail", "url": D, "modified_at": r.json()["data"]["modified_at"]}
    expect(r, 200, {**updated, "data": after_both})
    expect(kirim.get(f"{base}/{guid}"), 200, {"success": True, "data": after_both})
    # an update that changes nothing is still a 200
    r = kirim.put(f"{base}/{guid}", json={"url": D})
    expect(r, 200, {**updated, "data": {**after_both, "modified_at": r.json()["data"]["modified_at"]}})

    # soft delete: 200 with the documented body, then the row is gone from get, list, put and delete
    expect(kirim.delete(f"{base}/{guid}"), 200, DELETED)
    expect(kirim.get(f"{base}/{guid}"), 404, WEBHOOK_NOT_FOUND)
    expect(kirim.put(f"{base}/{guid}", json={"url": A}), 404, WEBHOOK_NOT_FOUND)
    expect(kirim.delete(f"{base}/{guid}"), 404, WEBHOOK_NOT_FOUND)
    expect(kirim.get(base), 200, {"success": True, "data": [second], "count": 1})
    expect(kirim.get(base, params={"type": "temporary_fail"}), 200, {"success": True, "data": [], "count": 0})


def test_every_kirim_type_and_the_list_filter(kirim: httpx.Client, tenant: Tenant) -> None:
    rows = [create(kirim, tenant, name, A) for name in KIRIM_TYPES]
    assert listed(kirim, tenant) == rows
    for name, row in zip(KIRIM_TYPES, rows, strict=True):
        expect(kirim.get(hooks(tenant.domain), params={"type": name}), 200,
               {"success": True, "data": [row], "count": 1})
    second = create(kirim, tenant, "clicked", B)
    assert listed(kirim, tenant, type="clicked") == [rows[KIRIM_TYPES.index("clicked")], second]


def test_list_filter_rejects_unknown_types(kirim: httpx.Client, tenant: Tenant) -> None:
    for name in ("nope", "temp_fail", "accepted", "complained", "Delivered", "", "x" * 300, "a\x00b"):
        expect(kirim.get(hooks(tenant.domain), params={"type": name}), 422,
               invalid({"type": ["The selected type is invalid."]}))


def test_kirim_lists_show_mailgun_rows_in_kirim_vocabulary(kirim: httpx.Client, in_process: InProcessApp,
                                                          tenant: Tenant) -> None:
    """One row store, two views: a Mailgun-made ``clicked`` is visible to Kirim, ``accepted`` is not."""
    with client_for(in_process, "api", tenant.api_key) as mailgun:
        r = mailgun.post(f"/v3/domains/{tenant.domain}/webhooks", data={"id": "accepted", "url": A})
        assert r.status_code == 200, r.text
        r = mailgun.post(f"/v3/domains/{tenant.domain}/webhooks", data={"id": "clicked", "url": B})
        assert r.status_code == 200, r.text
    (row,) = listed(kirim, tenant)
    assert (row["type"], row["url"]) == ("clicked", B)
    assert webhook(tenant, row, "clicked", B) == row
    # and the Kirim rules count it: B is already subscribed to clicked
    expect(kirim.post(hooks(tenant.domain), json={"type": "clicked", "url": B}), 422,
           invalid({"url": ["A webhook for this type and url already exists."]}))


# ------------------------------------------------------------------------- docs/dialects/kirimemail.md#validation (422)
def test_create_validation(kirim: httpx.Client, tenant: Tenant) -> None:
    base = hooks(tenant.domain)
    required = {"type": ["The type field is required."], "url": ["The url field is required."]}
    expect(kirim.post(base, json={}), 422, invalid(required))
    expect(kirim.post(base, json={"type": "", "url": "  "}), 422, invalid(required))
    expect(kirim.post(base, json={"type": None, "url": None}), 422, invalid(required))
    expect(kirim.post(base, json={"url": A}), 422, invalid({"type": ["The type field is required."]}))
    expect(kirim.post(base, json={"type": "opened"}), 422, invalid({"url": ["The url field is required."]}))
    for name in ("nope", "temp_fail", "accepted", "OPENED", 3, ["opened"]):
        expect(kirim.post(base, json={"type": name, "url": A}), 422,
               invalid({"type": ["The selected type is invalid."]}))
    for bad in ("ftp://hooks.example.com/x", "javascript:alert(1)", "hooks.example.com/x", "mailto:a@b.example"):
        expect(kirim.post(base, json={"type": "opened", "url": bad}), 422,
               invalid({"url": ["The url must use HTTP or HTTPS."]}))
    for bad in ("https://", "http:///path", "https://exa mple.com/", "https://host:99999/", "https://a.example/\x00"):
        expect(kirim.post(base, json={"type": "opened", "url": bad}), 422,
               invalid({"url": ["The url must be a valid URL."]}))
    expect(kirim.post(base, json={"type": "opened", "url": "https://x.example/" + "a" * 2100}), 422,
           invalid({"url": ["The url may not be greater than 2048 characters."]}))
    # unknown fields are refused, every problem is reported at once
    expect(kirim.post(base, json={"type": "opened", "url": A, "event_type": "opened"}), 422,
           invalid({"event_type": ["The event_type field is not allowed."]}))
    expect(kirim.post(base, json={"type": "nope", "url": "ftp://x.example/", "extra": 1}), 422,
           invalid({"extra": ["The extra field is not allowed."], "type": ["The selected type is invalid."],
                    "url": ["The url must use HTTP or HTTPS."]}))
    # nothing of it was stored
    assert listed(kirim, tenant) == []


def test_duplicates_and_the_three_url_limit(kirim: httpx.Client, tenant: Tenant) -> None:
    base = hooks(tenant.domain)
    duplicate = invalid({"url": ["A webhook for this type and url already exists."]})
    too_many = invalid({"url": ["A maximum of 3 urls is allowed per event type."]})
    a, b, c = (create(kirim, tenant, "opened", url) for url in (A, B, C))
    expect(kirim.post(base, json={"type": "opened", "url": A}), 422, duplicate)
    expect(kirim.post(base, json={"type": "opened", "url": f"  {A}  "}), 422, duplicate)  # stripped first
    expect(kirim.post(base, json={"type": "opened", "url": D}), 422, too_many)
    other = create(kirim, tenant, "clicked", A)  # the same URL for another type is fine
    # updates obey the same rules, and a refused update changes nothing
    expect(kirim.put(f"{base}/{other['webhook_guid']}", json={"type": "opened"}), 422, duplicate)
    expect(kirim.put(f"{base}/{other['webhook_guid']}", json={"type": "opened", "url": D}), 422, too_many)
    expect(kirim.put(f"{base}/{a['webhook_guid']}", json={"url": B}), 422, duplicate)
    # moving within a full type is fine (the row does not count against itself)
    r = kirim.put(f"{base}/{a['webhook_guid']}", json={"url": D})
    assert r.status_code == 200 and r.json()["data"]["url"] == D
    a = r.json()["data"]
    assert listed(kirim, tenant) == [a, b, c, other]
    # a deleted row frees its slot and its (type, url)
    expect(kirim.delete(f"{base}/{b['webhook_guid']}"), 200, DELETED)
    again = create(kirim, tenant, "opened", B)
    assert again["webhook_guid"] != b["webhook_guid"]


def test_update_validation(kirim: httpx.Client, tenant: Tenant) -> None:
    base = hooks(tenant.domain)
    row = create(kirim, tenant, "delivered", A)
    path = f"{base}/{row['webhook_guid']}"
    at_least_one = invalid({"type": ["The type field is required when url is not present."],
                            "url": ["The url field is required when type is not present."]})
    expect(kirim.put(path, json={}), 422, at_least_one)
    expect(kirim.put(path), 422, at_least_one)  # no body at all
    expect(kirim.put(path, json={"type": None, "url": ""}), 422, at_least_one)
    expect(kirim.put(path, json={"type": "nope"}), 422, invalid({"type": ["The selected type is invalid."]}))
    expect(kirim.put(path, json={"url": "gopher://x.example/"}), 422,
           invalid({"url": ["The url must use HTTP or HTTPS."]}))
    expect(kirim.put(path, json={"url": B, "webhook_guid": "x"}), 422,
           invalid({"webhook_guid": ["The webhook_guid field is not allowed."]}))
    expect(kirim.get(path), 200, {"success": True, "data": row})


def test_unknown_guids_are_not_found(kirim: httpx.Client, tenant: Tenant) -> None:
    base = hooks(tenant.domain)
    create(kirim, tenant, "delivered", A)
    for guid in (str(uuid.uuid4()), "550e8400-e29b-41d4-a716-446655440000", "not-a-guid", "test", "a%00b",
                 "x" * 64, "x" * 300):
        expect(kirim.get(f"{base}/{guid}"), 404, WEBHOOK_NOT_FOUND)
        expect(kirim.put(f"{base}/{guid}", json={"url": B}), 404, WEBHOOK_NOT_FOUND)
        expect(kirim.delete(f"{base}/{guid}"), 404, WEBHOOK_NOT_FOUND)
    # an unknown webhook is reported before the body is looked at
    expect(kirim.put(f"{base}/{uuid.uuid4()}", json={"type": "nope"}), 404, WEBHOOK_NOT_FOUND)
    assert len(listed(kirim, tenant)) == 1


# ---------------------------------------------------------------------------- bodies the server cannot read
@pytest.mark.parametrize("method_path", [("POST", ""), ("PUT", "/{guid}"), ("POST", "/test")])
def test_unreadable_bodies_get_kirim_4xx(kirim: httpx.Client, tenant: Tenant, method_path: tuple[str, str]) -> None:
    method, suffix = method_path
    row = create(kirim, tenant, "delivered", A)
    path = hooks(tenant.domain) + suffix.format(guid=row["webhook_guid"])
    as_json = {"Content-Type": "application/json"}

    def body_error(r: httpx.Response, starts: str) -> None:
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == JSON_TYPE
        got = r.json()
        assert got["success"] is False and got["message"] == "Validation failed."
        assert list(got["errors"]) == ["body"] and len(got["errors"]["body"]) == 1
        assert got["errors"]["body"][0].startswith(starts), got

    body_error(kirim.request(method, path, content=b'{"type": "opened",', headers=as_json),
               "The request body is not valid JSON")
    body_error(kirim.request(method, path, content=b'{"url": "https://a.example/\xff"}', headers=as_json),
               "The request body is not valid JSON")
    body_error(kirim.request(method, path, data={"type": "opened", "url": B}),
               "Unsupported Content-Type 'application/x-www-form-urlencoded': send application/json")
    body_error(kirim.request(method, path, content=b'{"type": "opened"}', headers={"Content-Type": "text/plain"}),
               "Unsupported Content-Type 'text/plain'")
    body_error(kirim.request(method, path, files={"url": ("u.txt", b"https://b.example/")}),
               "Unsupported Content-Type 'multipart/form-data'")
    for not_an_object in (b"[]", b'"opened"', b"null", b"42"):
        expect(kirim.request(method, path, content=not_an_object, headers=as_json), 422,
               invalid({"body": ["The request body must be a JSON object."]}))
    too_large = {"success": False, "message": f"Request body larger than {MAX_BYTES} bytes",
                 "errors": {"body": [f"The body may not be larger than {MAX_BYTES} bytes."]}}
    big = json.dumps({"type": "opened", "url": "https://b.example/" + "a" * MAX_BYTES}).encode()
    expect(kirim.request(method, path, content=big, headers=as_json), 413, too_large)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds on the streamed body too
        yield b'{"url": "https://b.example/'
        for _ in range(17):
            yield b"a" * 65536
        yield b'"}'

    expect(kirim.request(method, path, content=chunks(), headers=as_json), 413, too_large)
    # nothing changed
    assert listed(kirim, tenant) == [row]


def test_json_without_content_type_and_vendor_json_types_are_read(kirim: httpx.Client, tenant: Tenant) -> None:
    base = hooks(tenant.domain)
    r = kirim.post(base, content=json.dumps({"type": "opened", "url": A}).encode())
    assert r.status_code == 201, r.text
    r = kirim.post(base, content=json.dumps({"type": "opened", "url": B}).encode(),
                   headers={"Content-Type": "application/vnd.api+json; charset=utf-8"})
    assert r.status_code == 201, r.text
    assert [row["url"] for row in listed(kirim, tenant)] == [A, B]


def test_routes_and_methods_outside_the_dialect(kirim: httpx.Client, tenant: Tenant) -> None:
    base = hooks(tenant.domain)
    expect(kirim.patch(base, json={}), 405, {"success": False, "message": "Method Not Allowed"})
    row = create(kirim, tenant, "opened", A)
    expect(kirim.patch(f"{base}/{row['webhook_guid']}", json={"url": B}), 405,
           {"success": False, "message": "Method Not Allowed"})
    expect(kirim.get(f"{base}/{row['webhook_guid']}/extra"), 404, DOMAIN_NOT_FOUND)
    # GET /webhooks/test is a get of the guid "test" (docs/dialects/kirimemail.md#routes)
    expect(kirim.get(f"{base}/test"), 404, WEBHOOK_NOT_FOUND)
    expect(kirim.delete(f"{base}/test"), 404, WEBHOOK_NOT_FOUND)


# ------------------------------------------------------------------------- docs/dialects/kirimemail.md#authentication
def test_bad_credentials_are_401(in_process: InProcessApp, tenant: Tenant, provision: Provisioner) -> None:
    dom = tenant.domain
    with client_for(in_process, tenant.username, tenant.api_key) as kirim:
        guid = create(kirim, tenant, "opened", A)["webhook_guid"]
    other = provision.tenant()
    base = hooks(dom)
    routes = [("GET", base), ("POST", base), ("GET", f"{base}/{guid}"), ("PUT", f"{base}/{guid}"),
              ("DELETE", f"{base}/{guid}"), ("POST", f"{base}/test"),
              ("GET", hooks("nowhere.example"))]
    wrong = [
        {"auth": (tenant.username, "mh_wrong")},                  # wrong key
        {"auth": (tenant.username + "x", tenant.api_key)},        # wrong username
        {"auth": (tenant.username.upper(), tenant.api_key)},      # usernames are exact
        {"auth": (other.username, tenant.api_key)},               # another account's username
        {"auth": (tenant.username, other.api_key)},               # another account's key
        {"auth": ("api", tenant.api_key)},                        # the Mailgun form is not the Kirim form
        {"auth": ("", tenant.api_key)},
        {"auth": (tenant.username, "")},
        {"headers": {"Authorization": f"Bearer {tenant.api_key}"}},
        {"headers": {"Authorization": "Basic !!not-base64"}},
        {},
    ]
    with in_process.client() as anonymous:
        for method, url in routes:
            for kwargs in wrong:
                r = anonymous.request(method, url, json={"type": "clicked", "url": B}, **kwargs)  # type: ignore[arg-type]
                expect(r, 401, UNAUTHORIZED)
    # the webhook is untouched
    with client_for(in_process, tenant.username, tenant.api_key) as kirim:
        assert [row["webhook_guid"] for row in listed(kirim, tenant)] == [guid]


# ---------------------------------------------------------------------------- ownership
def test_foreign_and_unknown_domains_are_the_same_404(kirim: httpx.Client, in_process: InProcessApp,
                                                      tenant: Tenant, provision: Provisioner) -> None:
    other = provision.tenant()
    with client_for(in_process, other.username, other.api_key) as theirs:
        their_row = create(theirs, other, "opened", A)
    mine = create(kirim, tenant, "opened", A)
    guid = their_row["webhook_guid"]
    for dom in (other.domain, other.domain.upper(), "nowhere.example", "a" * 300, "a%00b.example", "%C3%A9.example"):
        base = hooks(dom)
        expect(kirim.get(base), 404, DOMAIN_NOT_FOUND)
        expect(kirim.get(base, params={"type": "nope"}), 404, DOMAIN_NOT_FOUND)  # ownership first
        expect(kirim.post(base, json={"type": "clicked", "url": B}), 404, DOMAIN_NOT_FOUND)
        expect(kirim.post(base, json={}), 404, DOMAIN_NOT_FOUND)
        expect(kirim.get(f"{base}/{guid}"), 404, DOMAIN_NOT_FOUND)
        expect(kirim.put(f"{base}/{guid}", json={"url": B}), 404, DOMAIN_NOT_FOUND)
        expect(kirim.delete(f"{base}/{guid}"), 404, DOMAIN_NOT_FOUND)
        expect(kirim.post(f"{base}/test", json={"url": A, "event_type": "opened"}), 404, DOMAIN_NOT_FOUND)
    # their guid under my own domain is simply not one of my webhooks
    mybase = hooks(tenant.domain)
    expect(kirim.get(f"{mybase}/{guid}"), 404, WEBHOOK_NOT_FOUND)
    expect(kirim.put(f"{mybase}/{guid}", json={"url": B}), 404, WEBHOOK_NOT_FOUND)
    expect(kirim.delete(f"{mybase}/{guid}"), 404, WEBHOOK_NOT_FOUND)
    # domain names are case-insensitive and may carry the root's trailing dot
    expect(kirim.get(hooks(tenant.domain.upper() + ".")), 200, {"success": True, "data": [mine], "count": 1})
    with client_for(in_process, other.username, other.api_key) as theirs:
        assert listed(theirs, other) == [their_row]


# ---------------------------------------------------------------------------- docs/dialects/kirimemail.md#test-endpoint
def _check_kirim_delivery(got: Any, tenant: Tenant, event_type: str) -> dict[str, Any]:
    """The body the receiver got: the flat Kirim fields, signed per docs/dialects/kirimemail.md#signatures."""
    assert got.headers["Content-Type"] == "application/json"
    body = json.loads(got.body)
    assert isinstance(body, dict)
    for key in ("message_guid", "type", "event_type", "event", "sender", "sender_domain", "sender_ip", "recipient",
                "recipient_domain", "recipient_ip", "subject", "status", "tags", "event_detail", "signature"):
        assert key in body, key
    assert body["type"] == "email" and body["event_type"] == event_type and body["event"] == event_type
    assert isinstance(body["tags"], str) and isinstance(body["event_detail"], str)
    json.loads(body["event_detail"])  # a JSON string
    assert isinstance(body["timestamp"], int) and abs(body["timestamp"] - time.time()) < 120
    assert body["sender_domain"] == tenant.domain and body["recipient_domain"] == "example.com"
    secret = tenant.domains[tenant.domain]
    assert body["message_guid"]
    # HMAC-SHA256(key = domain secret + message_guid, message = "") as the vendor's receiver checks it
    assert body["signature"] == kirim_signature(secret, body["message_guid"])
    assert body["signature"] != kirim_signature(secret + "0", body["message_guid"])
    # plus the Standard Webhooks headers every delivery carries
    assert got.headers["webhook-signature"].startswith("v1,") and got.headers["webhook-id"]
    return body


def test_test_endpoint_posts_a_signed_kirim_event(kirim: httpx.Client, tenant: Tenant, receiver: Receiver) -> None:
    path = f"/kirim-ok-{tenant.username}"
    url = receiver.url(path)
    r = kirim.post(f"{hooks(tenant.domain)}/test", json={"url": url, "event_type": "temporary_fail"})
    elapsed = r.json()["data"]["response_time"]
    assert isinstance(elapsed, int) and 0 <= elapsed < 10_000
    expect(r, 200, {"success": True, "message": "Webhook test completed successfully",
                    "data": {"url": url, "event_type": "temporary_fail", "response_status": 200,
                             "response_time": elapsed}})
    (got,) = receiver.wait_for(path, 1)
    first = _check_kirim_delivery(got, tenant, "temporary_fail")
    whsec = kirim.get("/v1/signing-key", auth=("api", tenant.api_key)).json()["whsec"]
    StandardWebhook(whsec).verify(got.body, got.headers)
    # each test is a fresh sample event
    kirim.post(f"{hooks(tenant.domain)}/test", json={"url": url, "event_type": "clicked"})
    second = _check_kirim_delivery(receiver.wait_for(path, 2)[1], tenant, "clicked")
    assert second["message_guid"] != first["message_guid"]
    # testing subscribes nothing
    assert listed(kirim, tenant) == []


def test_test_endpoint_any_2xx_is_success(kirim: httpx.Client, tenant: Tenant, receiver: Receiver) -> None:
    path = f"/kirim-201-{tenant.username}"
    receiver.script(path, [201])
    r = kirim.post(f"{hooks(tenant.domain)}/test", json={"url": receiver.url(path), "event_type": "delivered"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["response_status"] == 201


def test_test_endpoint_failures_are_424(kirim: httpx.Client, tenant: Tenant, receiver: Receiver) -> None:
    test = f"{hooks(tenant.domain)}/test"
    for status in (500, 404, 302):
        path = f"/kirim-{status}-{tenant.username}"
        receiver.script(path, [status])
        url = receiver.url(path)
        r = kirim.post(test, json={"url": url, "event_type": "bounced"})
        data = r.json().get("data", {})
        expect(r, 424, {"success": False, "message": "Webhook URL did not respond correctly",
                        "data": {"url": url, "event_type": "bounced", "response_status": status,
                                 "response_time": data.get("response_time")}})
        assert isinstance(data["response_time"], int) and data["response_time"] >= 0
        assert len(receiver.wait_for(path, 1)) == 1  # one attempt, never retried
        _check_kirim_delivery(receiver.on(path)[0], tenant, "bounced")

    closed = f"http://127.0.0.1:{free_port()}/nobody"
    r = kirim.post(test, json={"url": closed, "event_type": "opened"})
    data = r.json().get("data", {})
    expect(r, 424, {"success": False, "message": "Webhook URL did not respond correctly",
                    "data": {"url": closed, "event_type": "opened", "response_status": 0,
                             "response_time": data.get("response_time")}})
    assert isinstance(data["response_time"], int)


def test_test_endpoint_validation(kirim: httpx.Client, tenant: Tenant) -> None:
    test = f"{hooks(tenant.domain)}/test"
    expect(kirim.post(test, json={}), 422, invalid({"url": ["The url field is required."],
                                                    "event_type": ["The event type field is required."]}))
    expect(kirim.post(test, json={"url": A}), 422, invalid({"event_type": ["The event type field is required."]}))
    expect(kirim.post(test, json={"url": A, "event_type": "temp_fail"}), 422,
           invalid({"event_type": ["The selected event type is invalid."]}))
    expect(kirim.post(test, json={"url": "ftp://x.example/", "event_type": "opened"}), 422,
           invalid({"url": ["The url must use HTTP or HTTPS."]}))
    # the Node SDK's {"webhook_guid": …} (docs/dialects/kirimemail.md#the-official-sdks) is not the documented body
    expect(kirim.post(test, json={"webhook_guid": str(uuid.uuid4())}), 422,
           invalid({"webhook_guid": ["The webhook_guid field is not allowed."],
                    "url": ["The url field is required."], "event_type": ["The event type field is required."]}))


# ---------------------------------------------------------------------------- private targets
def test_private_targets_are_refused_when_not_allowed(strict_in_process: InProcessApp, tenant: Tenant) -> None:
    with client_for(strict_in_process, tenant.username, tenant.api_key) as kirim:
        base = hooks(tenant.domain)
        row = create(kirim, tenant, "opened", A)
        for url in ("http://127.0.0.1:9/x", "http://localhost:9/x", "http://10.1.2.3/x", "http://[::1]:9/x",
                    "http://169.254.169.254/latest/meta-data/", "http://192.168.0.10/x"):
            answers = [kirim.post(base, json={"type": "clicked", "url": url}),
                       kirim.put(f"{base}/{row['webhook_guid']}", json={"url": url}),
                       kirim.post(f"{base}/test", json={"url": url, "event_type": "opened"})]
            for r in answers:
                assert r.status_code == 422, (url, r.request.url, r.text)
                body = r.json()
                assert body["success"] is False and body["message"] == "Validation failed."
                (message,) = body["errors"]["url"]
                assert message.startswith("The url resolves to a private or loopback address ("), message
        assert listed(kirim, tenant) == [row]


# ---------------------------------------------------------------------------- rules hold under concurrency
def test_concurrent_creates_keep_the_rules(in_process: InProcessApp, tenant: Tenant) -> None:
    """Many clients at once: never a 4th URL for a type, never one (type, url) twice."""
    base = hooks(tenant.domain)
    bodies = [*({"type": "opened", "url": f"https://o{i}.example.com/"} for i in range(8)),
              *({"type": "clicked", "url": A} for _ in range(8))]

    async def burst() -> list[httpx.Response]:
        async with in_process.async_client(auth=(tenant.username, tenant.api_key)) as client:
            return list(await asyncio.gather(*(client.post(base, json=body) for body in bodies)))

    answers = asyncio.run(burst())
    assert sorted(r.status_code for r in answers[:8]) == [201] * 3 + [422] * 5
    assert sorted(r.status_code for r in answers[8:]) == [201] + [422] * 7
    for r in answers:
        if r.status_code == 422:
            assert r.json()["errors"]["url"][0] in ("A maximum of 3 urls is allowed per event type.",
                                                    "A webhook for this type and url already exists."), r.text
    with client_for(in_process, tenant.username, tenant.api_key) as kirim:
        rows = listed(kirim, tenant)
        assert sorted(row["type"] for row in rows) == ["clicked"] + ["opened"] * 3
        # concurrent updates into a full type cannot overfill it either
        extra = [create(kirim, tenant, "delivered", f"https://d{i}.example.com/") for i in range(3)]

    async def moves() -> list[httpx.Response]:
        async with in_process.async_client(auth=(tenant.username, tenant.api_key)) as client:
            return list(await asyncio.gather(*(client.put(f"{base}/{row['webhook_guid']}", json={"type": "clicked"})
                                               for row in extra)))

    assert sorted(r.status_code for r in asyncio.run(moves())) == [200, 200, 422]
    with client_for(in_process, tenant.username, tenant.api_key) as kirim:
        assert len(listed(kirim, tenant, type="clicked")) == 3


# ---------------------------------------------------------------------------- the vendor's Python SDK
class FixedSmtpClient(SmtpClient):  # type: ignore[misc]
    """``kirimemail-smtp-sdk`` 1.5.0 ``SmtpClient``, its two transport bugs worked around (docs/dialects/kirimemail.md).

    Routing, auth headers, the JSON bodies and the status → exception mapping stay the SDK's own.
    """

    async def _make_request(self, method: str, endpoint: str, **kwargs: Any) -> dict[str, Any]:
        """Bug 1: ``get``/``post``/``put`` pass ``headers=None`` and ``_make_request`` then calls
        ``None.update(...)`` (AttributeError before any request is sent). Hand it an empty dict."""
        if kwargs.get("headers") is None:
            kwargs["headers"] = {}
        return await super()._make_request(method, endpoint, **kwargs)  # type: ignore[no-any-return]

    async def _handle_response(self, response: httpx.Response) -> dict[str, Any]:
        """Bug 2: ``_handle_response`` does ``await response.json()``, but httpx's ``json()`` is synchronous;
        the TypeError is swallowed and every body becomes ``{}``. Give it an awaitable ``json``."""

        class AwaitableJson:
            def __init__(self, inner: httpx.Response) -> None:
                self._inner = inner

            def __getattr__(self, name: str) -> Any:
                return getattr(self._inner, name)

            async def json(self) -> Any:
                return self._inner.json()

        return await super()._handle_response(AwaitableJson(response))  # type: ignore[no-any-return]


async def test_python_sdk_drives_every_webhook_call(server: ServerProcess, tenant: Tenant,
                                                    receiver: Receiver) -> None:
    dom = tenant.domain
    client = FixedSmtpClient(username=tenant.username, token=tenant.api_key, base_url=server.base_url, retries=0)
    api = WebhooksApi(client)
    try:
        created = await api.create_webhook(dom, webhook_type="delivered", url=A)
        row = webhook(tenant, created["data"], "delivered", A)
        assert created == {"success": True, "message": "Webhook created successfully.", "data": row}
        guid = row["webhook_guid"]
        other = (await api.create_webhook(dom, webhook_type="opened", url=B))["data"]

        assert await api.list_webhooks(dom) == {"success": True, "data": [row, other], "count": 2}
        assert await api.list_webhooks(dom, webhook_type="delivered") == {"success": True, "data": [row], "count": 1}
        assert await api.get_webhook(dom, guid) == {"success": True, "data": row}

        updated = await api.update_webhook(dom, guid, url=C)
        assert updated["message"] == "Webhook updated successfully."
        assert updated["data"] == {**row, "url": C, "modified_at": updated["data"]["modified_at"]}
        updated = await api.update_webhook(dom, guid, webhook_type="clicked")
        assert (updated["data"]["type"], updated["data"]["url"]) == ("clicked", C)
        updated = await api.update_webhook(dom, guid, webhook_type="bounced", url=D)
        assert (updated["data"]["type"], updated["data"]["url"]) == ("bounced", D)
        SdkWebhook.model_validate(updated["data"])

        path = f"/kirim-sdk-{tenant.username}"
        tested = await api.test_webhook(dom, url=receiver.url(path), event_type="delivered")
        assert tested["success"] is True and tested["message"] == "Webhook test completed successfully"
        assert tested["data"]["response_status"] == 200 and tested["data"]["url"] == receiver.url(path)
        _check_kirim_delivery(receiver.wait_for(path, 1)[0], tenant, "delivered")

        failing = f"/kirim-sdk-500-{tenant.username}"
        receiver.script(failing, [500])
        with pytest.raises(ApiException) as failed:
            await api.test_webhook(dom, url=receiver.url(failing), event_type="opened")
        assert failed.value.status_code == 424
        assert failed.value.message == "Webhook URL did not respond correctly"
        assert failed.value.response["data"]["response_status"] == 500

        assert await api.delete_webhook(dom, guid) is None
        with pytest.raises(NotFoundException) as missing:
            await api.get_webhook(dom, guid)
        assert (missing.value.status_code, missing.value.message) == (404, "Webhook not found")
        assert await api.list_webhooks(dom) == {"success": True, "data": [other], "count": 1}

        with pytest.raises(ValidationException) as refused:
            await api.create_webhook(dom, webhook_type="clicked", url="not a url")
        assert (refused.value.status_code, refused.value.message) == (422, "Validation failed.")
        assert refused.value.errors == {"url": ["The url must be a valid URL."]}
        with pytest.raises(ValidationException) as refused:
            await api.create_webhook(dom, webhook_type="opened", url=B)
        assert refused.value.get_error_for_field("url") == ["A webhook for this type and url already exists."]

        with pytest.raises(NotFoundException) as foreign:
            await api.list_webhooks("nowhere.example")
        assert foreign.value.message == "Domain not found or you do not own this domain"
    finally:
        await client.close()

    bad = FixedSmtpClient(username=tenant.username, token="mh_wrong", base_url=server.base_url, retries=0)
    try:
        with pytest.raises(AuthenticationException) as denied:
            await WebhooksApi(bad).list_webhooks(dom)
        assert (denied.value.status_code, denied.value.message) == (401, "Unauthorized")
    finally:
        await bad.close()


async def test_unpatched_sdk_only_reaches_delete(kirim: httpx.Client, server: ServerProcess, tenant: Tenant) -> None:
    """What users of the unmodified 1.5.0 SDK see: delete works against our 200 body, the rest fails locally.

    If this starts failing, the SDK was fixed and ``FixedSmtpClient`` can go.
    """
    guid = create(kirim, tenant, "opened", A)["webhook_guid"]
    client = SmtpClient(username=tenant.username, token=tenant.api_key, base_url=server.base_url, retries=0)
    api = WebhooksApi(client)
    try:
        with pytest.raises(AttributeError):
            await api.list_webhooks(tenant.domain)
        assert await api.delete_webhook(tenant.domain, guid) is None
        with pytest.raises(NotFoundException) as missing:
            await api.delete_webhook(tenant.domain, guid)
        assert missing.value.status_code == 404
    finally:
        await client.close()
    assert listed(kirim, tenant) == []
