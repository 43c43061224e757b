"""Email-native intake sources end to end: a real ``mailhooks serve`` per backend (SQLite and PostgreSQL),
sources made through ``POST /v1/sources``, real-shaped provider payloads signed by each provider's scheme
POSTed to the intake URL, and a real receiver subscribed to the canonical event types.

Per provider: the canonical events and their deliveries, a re-post that changes nothing, and the refusals
(bad signature or credentials, expired timestamp, malformed body, unknown event) answered 4xx and counted
in ``/metrics``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.source_samples import (
    SendGridSigner,
    mailgun_body,
    mailgun_delivered,
    mailgun_failed,
    postmark_records,
    sendgrid_batch,
)
from tests.support import Provisioner, Receiver, ServerProcess, Tenant

FAST_ENV = {"MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1", "MAILHOOKS_RATE_LIMIT": "100000/minute",
            "MAILHOOKS_RETRY_SCHEDULE": "0.2,0.2", "MAILHOOKS_POLL_INTERVAL": "0.1"}
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"


@pytest.fixture(scope="module")
def fast_server(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(module_db, log_dir=tmp_path_factory.mktemp("sources-logs"), env=FAST_ENV)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture()
def customer(module_db: str, fast_server: ServerProcess) -> Tenant:
    return Provisioner(module_db).tenant()


def native(customer: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {customer.api_key}"}


def create_source(server: ServerProcess, customer: Tenant, provider: str, **config: str) -> dict[str, Any]:
    r = httpx.post(f"{server.base_url}/v1/sources", headers=native(customer),
                   json={"provider": provider, "domain": customer.domain, **config})
    assert r.status_code == 201, r.text
    return dict(r.json())


def subscribe(server: ServerProcess, customer: Tenant, path: str, receiver: Receiver, *types: str) -> None:
    r = httpx.post(f"{server.base_url}/v4/domains/{customer.domain}/webhooks", auth=("api", customer.api_key),
                   data={"url": receiver.url(path), "event_types": list(types)})
    assert r.status_code == 200, r.text


def events(server: ServerProcess, customer: Tenant) -> dict[str, dict[str, Any]]:
    r = httpx.get(f"{server.base_url}/v1/events", params={"domain": customer.domain}, headers=native(customer))
    assert r.status_code == 200, r.text
    return {item["id"]: item["data"] for item in r.json()["items"]}


def delivery_count(server: ServerProcess, customer: Tenant) -> int:
    r = httpx.get(f"{server.base_url}/v1/deliveries", params={"domain": customer.domain}, headers=native(customer))
    return len(r.json()["items"])


def rejections(server: ServerProcess, provider: str, reason: str) -> float:
    text = httpx.get(f"{server.base_url}/metrics").text
    found = re.search(rf'^mailhooks_source_rejections_total{{provider="{provider}",reason="{reason}"}} (\S+)$', text,
                      re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def refused(server: ServerProcess, url: str, provider: str, reason: str, status: int, **request: Any) -> None:
    """POST to the intake URL; expect ``status`` in the native error shape, counted under ``reason``."""
    before = rejections(server, provider, reason)
    r = httpx.post(url, **request)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"message"}
    assert rejections(server, provider, reason) == before + 1


def received_event_data(receiver: Receiver, path: str, count: int) -> list[dict[str, Any]]:
    got = receiver.wait_for(path, count)
    time.sleep(0.3)  # nothing more may arrive
    assert len(receiver.on(path)) == count
    return [json.loads(r.body)["event-data"] for r in got]


# ---------------------------------------------------------------------- the owner's API
def test_create_list_delete_and_secrets_never_read_back(fast_server: ServerProcess, customer: Tenant,
                                                        module_db: str) -> None:
    created = create_source(fast_server, customer, "mailgun", signing_key=MAILGUN_KEY)
    guid = created["guid"]
    assert created["intake_url"] == f"{fast_server.base_url}/v1/sources/{guid}/events"
    assert created["setup"]["url"] == created["intake_url"] and "delivered" in created["setup"]["events"]
    listed = httpx.get(f"{fast_server.base_url}/v1/sources", headers=native(customer))
    assert listed.json()["items"] == [{k: v for k, v in created.items() if k not in ("intake_url", "setup")}]
    assert MAILGUN_KEY not in listed.text and MAILGUN_KEY not in created["config"].values()

    postmark = create_source(fast_server, customer, "postmark")
    password = urlsplit(postmark["setup"]["url"]).password
    assert password and password not in httpx.get(f"{fast_server.base_url}/v1/sources", headers=native(customer)).text

    bad = httpx.post(f"{fast_server.base_url}/v1/sources", headers=native(customer),
                     json={"provider": "smoke-signals", "domain": customer.domain})
    assert bad.status_code == 422 and "provider" in bad.json()["errors"]
    no_key = httpx.post(f"{fast_server.base_url}/v1/sources", headers=native(customer),
                        json={"provider": "sendgrid", "domain": customer.domain, "public_key": "not a key"})
    assert no_key.status_code == 422 and "public_key" in no_key.json()["errors"]

    other = Provisioner(module_db).tenant()
    foreign = httpx.post(f"{fast_server.base_url}/v1/sources", headers=native(other),
                         json={"provider": "postmark", "domain": customer.domain})
    assert foreign.status_code == 404
    not_theirs = httpx.delete(f"{fast_server.base_url}/v1/sources/{guid}", headers=native(other))
    missing = httpx.delete(f"{fast_server.base_url}/v1/sources/{uuid.uuid4()}", headers=native(other))
    assert missing.status_code == 404
    assert (not_theirs.status_code, not_theirs.content) == (missing.status_code, missing.content)
    assert httpx.get(f"{fast_server.base_url}/v1/sources", headers=native(other)).json()["items"] == []

    assert httpx.delete(f"{fast_server.base_url}/v1/sources/{guid}", headers=native(customer)).status_code == 204
    body = mailgun_body(MAILGUN_KEY, mailgun_delivered("gone-1"))
    gone = httpx.post(created["intake_url"], content=body)
    unknown = httpx.post(f"{fast_server.base_url}/v1/sources/{uuid.uuid4()}/events", content=body)
    assert gone.status_code == 404 and (gone.content == unknown.content)
    assert httpx.post(f"{fast_server.base_url}/v1/sources/not-a-guid/events", content=body).status_code == 404


# ---------------------------------------------------------------------- Mailgun
def test_mailgun_webhooks_become_events_and_deliveries(fast_server: ServerProcess, customer: Tenant,
                                                       receiver: Receiver) -> None:
    path = f"/mg-{uuid.uuid4().hex[:8]}"
    subscribe(fast_server, customer, path, receiver, "delivered", "permanent_fail")
    url = create_source(fast_server, customer, "mailgun", signing_key=MAILGUN_KEY)["intake_url"]
    delivered_id, failed_id = f"dlv{uuid.uuid4().hex[:12]}", f"fail{uuid.uuid4().hex[:12]}"
    delivered = mailgun_body(MAILGUN_KEY, mailgun_delivered(delivered_id))
    r = httpx.post(url, content=delivered, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json() == {"ids": [delivered_id], "new": 1, "ignored": 0}
    assert httpx.post(url, content=mailgun_body(MAILGUN_KEY, mailgun_failed(failed_id))).json()["new"] == 1

    data = {d["id"]: d for d in received_event_data(receiver, path, 2)}
    assert data[delivered_id]["event"] == "delivered" and data[delivered_id]["recipient"] == "alice@example.com"
    assert data[delivered_id]["user-variables"]["my_var_1"] == "Mailgun Variable #1"
    assert data[delivered_id]["domain"] == {"name": customer.domain}
    assert (data[failed_id]["event"], data[failed_id]["severity"]) == ("failed", "permanent")
    stored = events(fast_server, customer)
    assert stored[failed_id]["event"] == "permanent_fail" and stored[failed_id]["severity"] == "permanent"
    assert stored[delivered_id]["source"] == {"provider": "mailgun", "event": "delivered"}

    again = httpx.post(url, content=delivered)  # Mailgun's retry of the same POST
    assert again.status_code == 200 and again.json() == {"ids": [delivered_id], "new": 0, "ignored": 0}
    time.sleep(0.5)
    assert len(receiver.on(path)) == 2 and delivery_count(fast_server, customer) == 2


def test_mailgun_refusals_are_4xx_and_counted(fast_server: ServerProcess, customer: Tenant) -> None:
    url = create_source(fast_server, customer, "mailgun", signing_key=MAILGUN_KEY)["intake_url"]
    event = mailgun_delivered("x1")
    refused(fast_server, url, "mailgun", "signature", 401,
            content=mailgun_body(MAILGUN_KEY, event, key="wrong-key-123"))
    refused(fast_server, url, "mailgun", "signature", 401, content=json.dumps({"event-data": event}))
    refused(fast_server, url, "mailgun", "expired", 401,
            content=mailgun_body(MAILGUN_KEY, event, timestamp=time.time() - 600))
    token = uuid.uuid4().hex
    assert httpx.post(url, content=mailgun_body(MAILGUN_KEY, event, token=token)).status_code == 200
    forged = mailgun_body(MAILGUN_KEY, {**event, "id": "x2", "recipient": "mallory@example.com"}, token=token)
    refused(fast_server, url, "mailgun", "replayed", 401, content=forged)
    refused(fast_server, url, "mailgun", "malformed", 400, content=b"{not json")
    refused(fast_server, url, "mailgun", "malformed", 400,
            content=mailgun_body(MAILGUN_KEY, "not an object"))  # type: ignore[arg-type]
    refused(fast_server, url, "mailgun", "unknown_event", 400,
            content=mailgun_body(MAILGUN_KEY, {**event, "id": "x3", "event": "teleported"}))
    refused(fast_server, url, "mailgun", "invalid", 400,
            content=mailgun_body(MAILGUN_KEY, {**event, "id": "x4", "recipient": None}))
    assert list(events(fast_server, customer)) == ["x1"]


# ---------------------------------------------------------------------- SendGrid
def test_sendgrid_batch_is_one_transaction_and_idempotent(fast_server: ServerProcess, customer: Tenant,
                                                          receiver: Receiver) -> None:
    path = f"/sg-{uuid.uuid4().hex[:8]}"
    subscribe(fast_server, customer, path, receiver, "accepted", "temporary_fail", "delivered", "opened", "clicked",
              "permanent_fail", "complained", "unsubscribed")
    signer = SendGridSigner()
    url = create_source(fast_server, customer, "sendgrid", public_key=signer.public_key)["intake_url"]
    prefix = uuid.uuid4().hex[:10]
    body = json.dumps(sendgrid_batch(prefix)).encode()
    r = httpx.post(url, content=body, headers=signer.headers(body))
    assert r.status_code == 200, r.text
    assert r.json() == {"ids": [f"{prefix}-{i}" for i in range(10)], "new": 10, "ignored": 1}

    # ``dropped`` (SendGrid refused to send) is stored as ``failed``, a Kirim.Email type: no subscriber here.
    data = {d["source"]["event"]: d for d in received_event_data(receiver, path, 9)}
    assert {name: d["event"] for name, d in data.items()} == {
        "processed": "accepted", "deferred": "failed", "delivered": "delivered", "open": "opened",
        "click": "clicked", "bounce": "failed", "spamreport": "complained",
        "unsubscribe": "unsubscribed", "group_unsubscribe": "unsubscribed"}
    stored = {d["source"]["event"]: d for d in events(fast_server, customer).values()}
    assert (stored["dropped"]["event"], stored["dropped"]["reason"]) == ("failed", "Bounced Address")
    assert stored["deferred"]["event"] == "temporary_fail" and stored["bounce"]["event"] == "permanent_fail"
    assert data["bounce"]["severity"] == "permanent" and data["deferred"]["severity"] == "temporary"
    assert data["bounce"]["delivery-status"]["message"] == "500 unknown recipient"
    assert data["bounce"]["bounce-classification"] == "Invalid Address"
    assert data["click"]["url"] == "http://www.sendgrid.com/" and data["open"]["ip"] == "255.255.255.255"
    assert data["open"]["client-info"]["user-agent"].startswith("Mozilla/4.0")
    assert data["delivered"]["recipient"] == "example@test.com" and data["delivered"]["tags"] == ["cat facts"]
    assert data["delivered"]["user-variables"] == {"customer_account": "A1"}
    assert data["group_unsubscribe"]["user-variables"] == {"customer_account": "A1"}

    again = httpx.post(url, content=body, headers=signer.headers(body))
    assert again.status_code == 200 and again.json()["new"] == 0
    time.sleep(0.5)
    assert len(receiver.on(path)) == 9 and delivery_count(fast_server, customer) == 9

    # One event the intake refuses (no recipient) refuses the whole batch: nothing of it is stored.
    half_bad = sendgrid_batch(uuid.uuid4().hex[:10])[:3]
    half_bad[2] = {k: v for k, v in half_bad[2].items() if k != "email"}
    bad_body = json.dumps(half_bad).encode()
    refused(fast_server, url, "sendgrid", "invalid", 400, content=bad_body, headers=signer.headers(bad_body))
    assert len(events(fast_server, customer)) == 10


def test_sendgrid_refusals_are_4xx_and_counted(fast_server: ServerProcess, customer: Tenant) -> None:
    signer = SendGridSigner()
    url = create_source(fast_server, customer, "sendgrid", public_key=signer.public_key)["intake_url"]
    body = json.dumps(sendgrid_batch(uuid.uuid4().hex[:10])[:2]).encode()
    refused(fast_server, url, "sendgrid", "signature", 401, content=body, headers=SendGridSigner().headers(body))
    tampered = body.replace(b"example@test.com", b"mallory@test.com")
    refused(fast_server, url, "sendgrid", "signature", 401, content=tampered, headers=signer.headers(body))
    refused(fast_server, url, "sendgrid", "signature", 401, content=body)
    refused(fast_server, url, "sendgrid", "expired", 401, content=body,
            headers=signer.headers(body, timestamp=time.time() - 600))
    for malformed in (b"[]", b'{"event": "delivered"}', b"[1, 2]", b"\xff\xfe"):
        refused(fast_server, url, "sendgrid", "malformed", 400, content=malformed, headers=signer.headers(malformed))
    unknown = json.dumps([{**json.loads(body)[0], "event": "teleported"}]).encode()
    refused(fast_server, url, "sendgrid", "unknown_event", 400, content=unknown, headers=signer.headers(unknown))
    assert events(fast_server, customer) == {}


# ---------------------------------------------------------------------- Postmark
def test_postmark_records_become_events_and_deliveries(fast_server: ServerProcess, customer: Tenant,
                                                       receiver: Receiver) -> None:
    path = f"/pm-{uuid.uuid4().hex[:8]}"
    subscribe(fast_server, customer, path, receiver, "delivered", "permanent_fail", "temporary_fail", "complained",
              "opened", "clicked", "unsubscribed")
    source = create_source(fast_server, customer, "postmark")
    setup = urlsplit(source["setup"]["url"])
    auth = (setup.username or "", setup.password or "")
    recipient = f"john-{uuid.uuid4().hex[:6]}@example.com"
    records = postmark_records(recipient)
    for name, record in records.items():
        r = httpx.post(source["intake_url"], json=record, auth=auth)
        assert r.status_code == 200, (name, r.text)
        assert r.json()["new"] == 1, name

    sent = received_event_data(receiver, path, len(records))
    assert sorted((d["source"]["event"], d["event"], d.get("severity")) for d in sent) == [
        ("Bounce", "failed", "permanent"), ("Bounce", "failed", "temporary"), ("Click", "clicked", None),
        ("Delivery", "delivered", None), ("Open", "opened", None), ("SpamComplaint", "complained", None),
        ("SubscriptionChange", "unsubscribed", None)]
    assert {d["recipient"] for d in sent} == {recipient}
    data = {(d["source"]["event"], d["event"]): d for d in sent}
    stored = {(d["source"]["event"], d.get("reason")): d for d in events(fast_server, customer).values()}
    assert stored[("Bounce", "HardBounce")]["event"] == "permanent_fail"
    assert stored[("Bounce", "SoftBounce")]["event"] == "temporary_fail"
    assert stored[("Bounce", "SoftBounce")]["severity"] == "temporary"
    delivered = data[("Delivery", "delivered")]
    assert delivered["recipient"] == recipient and delivered["tags"] == ["welcome-email"]
    assert delivered["user-variables"] == {"a_key": "a_value", "b_key": "b_value"}
    assert delivered["message"]["headers"]["message-id"] == records["Delivery"]["MessageID"]
    assert delivered["timestamp"] == pytest.approx(1572971634.907, abs=0.01)
    assert data[("Click", "clicked")]["url"] == "https://example.com"
    assert data[("Open", "opened")]["ip"] == "188.2.95.4"
    assert data[("Open", "opened")]["client-info"]["client-name"] == "Chrome 35.0.1916.153"

    again = httpx.post(source["intake_url"], json=records["Delivery"], auth=auth)
    assert again.status_code == 200 and again.json()["new"] == 0
    time.sleep(0.5)
    assert len(receiver.on(path)) == len(records) == delivery_count(fast_server, customer)


def test_postmark_refusals_are_4xx_and_counted(fast_server: ServerProcess, customer: Tenant) -> None:
    source = create_source(fast_server, customer, "postmark")
    setup = urlsplit(source["setup"]["url"])
    url, auth = source["intake_url"], (setup.username or "", setup.password or "")
    record = postmark_records("john@example.com")["Delivery"]
    refused(fast_server, url, "postmark", "signature", 401, json=record)
    refused(fast_server, url, "postmark", "signature", 401, json=record, auth=(auth[0], auth[1] + "x"))
    refused(fast_server, url, "postmark", "malformed", 400, content=b"{nope", auth=auth)
    refused(fast_server, url, "postmark", "malformed", 400, json=[record], auth=auth)
    refused(fast_server, url, "postmark", "unknown_event", 400, json={**record, "RecordType": "Teleport"}, auth=auth)
    assert events(fast_server, customer) == {}


# ---------------------------------------------------------------------- the command line
@pytest.mark.parametrize("module_db", ["sqlite"], indirect=True)
def test_cli_creates_a_source_the_provider_can_post_to(fast_server: ServerProcess, customer: Tenant,
                                                       module_db: str) -> None:
    from tests.test_cli import cli, one_json_line

    made = one_json_line(cli(module_db, "sources", "create", customer.username, "--provider", "postmark",
                             "--domain", customer.domain, "--base-url", fast_server.base_url, "--json"))
    setup = urlsplit(made["setup"]["url"])
    record = postmark_records("john@example.com")["Delivery"]
    r = httpx.post(made["intake_url"], json=record, auth=(setup.username or "", setup.password or ""))
    assert r.status_code == 200 and r.json()["new"] == 1
    text = cli(module_db, "sources", "create", customer.username, "--provider", "mailgun", "--domain",
               customer.domain, "--signing-key", MAILGUN_KEY).stdout
    assert "provider webhook URL: http://127.0.0.1:8000/v1/sources/" in text
    missing = cli(module_db, "sources", "create", customer.username, "--provider", "mailgun", "--domain",
                  customer.domain, ok=False)
    assert "signing_key" in missing.stderr
    assert "Domain not found" in cli(module_db, "sources", "create", customer.username, "--provider", "postmark",
                                     "--domain", "nope.example", ok=False).stderr


# ---------------------------------------------------------------------- the dashboard
def test_dashboard_lists_creates_and_deletes_sources(fast_server: ServerProcess, customer: Tenant) -> None:
    from tests.test_ui import sign_in_http

    client, csrf = sign_in_http(fast_server, customer.api_key)
    page = client.get("/ui/sources")
    assert page.status_code == 200 and "No sources." in page.text and customer.domain in page.text
    made = client.post("/ui/sources", data={"csrf": csrf, "provider": "postmark", "domain": customer.domain})
    assert made.status_code == 200
    shown = re.search(r'id="source-url">([^<]+)<', made.text)
    assert shown is not None
    setup = urlsplit(shown.group(1).replace("&amp;", "&"))
    intake = f"{fast_server.base_url}{setup.path}"
    r = httpx.post(intake, json=postmark_records("john@example.com")["Delivery"],
                   auth=(setup.username or "", setup.password or ""))
    assert r.status_code == 200 and r.json()["new"] == 1
    listed = client.get("/ui/sources").text
    guid = setup.path.split("/")[3]
    assert guid in listed and (setup.password or "?") not in listed

    refused_form = client.post("/ui/sources", data={"csrf": csrf, "provider": "mailgun", "domain": customer.domain},
                               follow_redirects=True)
    assert "The signing_key field is required" in refused_form.text
    for hostile in ("%00", "a%00b", str(uuid.uuid4())):
        assert client.post(f"/ui/sources/{hostile}/delete", data={"csrf": csrf}).status_code == 404
    gone = client.post(f"/ui/sources/{guid}/delete", data={"csrf": csrf})
    assert gone.status_code == 303
    assert guid not in client.get("/ui/sources").text
    assert httpx.post(intake, json={}).status_code == 404
    client.close()
