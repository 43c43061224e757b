"""Intake sources for KumoMTA and Postal end to end, on SQLite and PostgreSQL: a real ``mailhooks serve``,
real-shaped provider bodies authenticated by each provider's scheme, a real receiver (see test_sources.py
for Mailgun, SendGrid, Postmark and the owner's API)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import hashes

from tests.source_samples import PostalSigner, kumo_batch, kumo_record, postal_bodies
from tests.support import Provisioner, Receiver, ServerProcess, Tenant
from tests.test_sources import (
    FAST_ENV,
    create_source,
    delivery_count,
    events,
    received_event_data,
    refused,
    subscribe,
)


@pytest.fixture(scope="module")
def fast_server(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(module_db, log_dir=tmp_path_factory.mktemp("sources-more-logs"), env=FAST_ENV)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture()
def customer(module_db: str, fast_server: ServerProcess) -> Tenant:
    return Provisioner(module_db).tenant()


# ---------------------------------------------------------------------- KumoMTA
def test_kumomta_log_records_become_events_and_deliveries(fast_server: ServerProcess, customer: Tenant,
                                                          receiver: Receiver) -> None:
    path = f"/kumo-{uuid.uuid4().hex[:8]}"
    subscribe(fast_server, customer, path, receiver, "accepted", "delivered", "temporary_fail", "permanent_fail",
              "complained")
    source = create_source(fast_server, customer, "kumomta")
    assert source["config"] == {"secret": "set"}
    headers = source["setup"]["headers"]
    recipient = f"user-{uuid.uuid4().hex[:6]}@recipient.example.com"
    batch = kumo_batch(recipient)
    r = httpx.post(source["intake_url"], json=batch, headers=headers)
    assert r.status_code == 200, r.text
    assert (r.json()["new"], r.json()["ignored"]) == (5, 1)
    single = kumo_record("Delivery", recipient, num_attempts=7)  # the unbatched hook: one record per POST
    assert httpx.post(source["intake_url"], json=single, headers=headers).json()["new"] == 1

    sent = received_event_data(receiver, path, 6)
    by_kind = {d["source"]["event"]: d for d in sent}
    assert {k: d["event"] for k, d in by_kind.items()} == {
        "Reception": "accepted", "TransientFailure": "failed", "Delivery": "delivered", "Bounce": "failed",
        "Feedback": "complained"}
    assert by_kind["TransientFailure"]["severity"] == "temporary"
    bounce = by_kind["Bounce"]
    assert bounce["severity"] == "permanent" and bounce["bounce-classification"] == "InvalidRecipient"
    assert bounce["delivery-status"] == {"code": 550, "enhanced-code": "5.1.1", "command": ".",
                                         "message": "The email account that you tried to reach does not exist."}
    assert bounce["recipient"] == recipient and bounce["user-variables"] == {"campaign_id": "spring-sale"}
    assert bounce["message"]["headers"]["message-id"] == "<8a5475cc.bbc6@sender.example.com>"
    assert bounce["timestamp"] == 1678069691

    again = httpx.post(source["intake_url"], json=batch, headers=headers)  # the hook's retry
    assert again.status_code == 200 and again.json()["new"] == 0
    time.sleep(0.5)
    assert len(receiver.on(path)) == 6 == delivery_count(fast_server, customer)


def test_kumomta_refusals_are_4xx_and_counted(fast_server: ServerProcess, customer: Tenant) -> None:
    source = create_source(fast_server, customer, "kumomta")
    url, headers = source["intake_url"], source["setup"]["headers"]
    record = kumo_record("Delivery", "someone@example.com")
    refused(fast_server, url, "kumomta", "signature", 401, json=record)
    refused(fast_server, url, "kumomta", "signature", 401, json=record,
            headers={"Authorization": headers["Authorization"] + "x"})
    refused(fast_server, url, "kumomta", "malformed", 400, content=b"not json", headers=headers)
    refused(fast_server, url, "kumomta", "malformed", 400, json=[], headers=headers)
    refused(fast_server, url, "kumomta", "malformed", 400, json={"recipient": "x@example.com"}, headers=headers)
    refused(fast_server, url, "kumomta", "unknown_event", 400, json=[record, {**record, "type": "Teleport"}],
            headers=headers)
    assert events(fast_server, customer) == {}


# ---------------------------------------------------------------------- Postal
def test_postal_webhooks_become_events_and_deliveries(fast_server: ServerProcess, customer: Tenant,
                                                      receiver: Receiver) -> None:
    path = f"/postal-{uuid.uuid4().hex[:8]}"
    subscribe(fast_server, customer, path, receiver, "delivered", "temporary_fail", "permanent_fail", "clicked",
              "opened")
    signer = PostalSigner()
    url = create_source(fast_server, customer, "postal", public_key=f"p={signer.public_key}")["intake_url"]
    recipient = f"test-{uuid.uuid4().hex[:6]}@example.com"
    bodies = postal_bodies(recipient)
    for name, body in bodies.items():
        r = httpx.post(url, content=body, headers=signer.headers(body, sha256=name != "MessageSent"))
        assert r.status_code == 200, (name, r.text)
        assert r.json()["new"] == (0 if name == "MessageHeld" else 1), name

    sent = {d["source"]["event"]: d for d in received_event_data(receiver, path, 6)}
    assert {k: (d["event"], d.get("severity")) for k, d in sent.items()} == {
        "MessageSent": ("delivered", None), "MessageDelayed": ("failed", "temporary"),
        "MessageDeliveryFailed": ("failed", "permanent"), "MessageBounced": ("failed", "permanent"),
        "MessageLinkClicked": ("clicked", None), "MessageLoaded": ("opened", None)}
    assert {d["recipient"] for d in sent.values()} == {recipient}
    delivered = sent["MessageSent"]
    assert delivered["id"] == json.loads(bodies["MessageSent"])["uuid"]
    assert delivered["message"]["headers"]["message-id"] == "5817a64332f44_4ec93ff59e79d154565eb@app34.mail"
    assert delivered["tags"] == ["welcome"] and delivered["delivery-status"]["tls"] is True
    assert sent["MessageLinkClicked"]["url"] == "https://atech.media"
    assert sent["MessageLoaded"]["ip"] == "185.22.208.2"

    body = bodies["MessageSent"]
    again = httpx.post(url, content=body, headers=signer.headers(body))
    assert again.status_code == 200 and again.json()["new"] == 0
    time.sleep(0.5)
    assert len(receiver.on(path)) == 6 == delivery_count(fast_server, customer)


def test_postal_refusals_are_4xx_and_counted(fast_server: ServerProcess, customer: Tenant) -> None:
    signer = PostalSigner()
    url = create_source(fast_server, customer, "postal", public_key=signer.public_key)["intake_url"]
    body = postal_bodies("someone@example.com")["MessageSent"]
    refused(fast_server, url, "postal", "signature", 401, content=body)
    refused(fast_server, url, "postal", "signature", 401, content=body, headers=PostalSigner().headers(body))
    tampered = body.replace(b"someone@", b"mallory@")
    refused(fast_server, url, "postal", "signature", 401, content=tampered, headers=signer.headers(body))
    # A wrong SHA-256 signature is not rescued by a right SHA-1 one.
    downgrade = {"X-Postal-Signature": signer.sign(body, hashes.SHA1()), "X-Postal-Signature-256": "AAAA"}
    refused(fast_server, url, "postal", "signature", 401, content=body, headers=downgrade)
    for malformed in (b"{oops", b"[]", json.dumps({"event": "MessageSent", "payload": {}}).encode()):
        refused(fast_server, url, "postal", "malformed", 400, content=malformed, headers=signer.headers(malformed))
    unknown = json.dumps({"event": "MessageTeleported", "uuid": str(uuid.uuid4()), "payload": {}}).encode()
    refused(fast_server, url, "postal", "unknown_event", 400, content=unknown, headers=signer.headers(unknown))
    assert events(fast_server, customer) == {}
    bad_key = httpx.post(f"{fast_server.base_url}/v1/sources", headers={"Authorization": f"Bearer {customer.api_key}"},
                         json={"provider": "postal", "domain": customer.domain, "public_key": "p=bm90IGEga2V5"})
    assert bad_key.status_code == 422 and "public_key" in bad_key.json()["errors"]
