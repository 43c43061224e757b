"""Amazon SES through SNS as an intake source, on SQLite and PostgreSQL: a real ``mailhooks serve`` whose
``MAILHOOKS_SNS_CERT_HOSTS`` names a loopback stand-in for Amazon SNS (certificate and subscription
confirmation), SNS messages signed as SNS signs them, a real receiver."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.ses_samples import TOPIC, SnsStandIn, ses_messages
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
def sns() -> Iterator[SnsStandIn]:
    stand_in = SnsStandIn()
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture(scope="module")
def fast_server(module_db: str, sns: SnsStandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {**FAST_ENV, "MAILHOOKS_SNS_CERT_HOSTS": sns.host}
    proc = ServerProcess(module_db, log_dir=tmp_path_factory.mktemp("sources-ses-logs"), env=env)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture()
def customer(module_db: str, fast_server: ServerProcess) -> Tenant:
    return Provisioner(module_db).tenant()


def test_ses_notifications_become_events_and_deliveries(fast_server: ServerProcess, customer: Tenant,
                                                        receiver: Receiver, sns: SnsStandIn) -> None:
    path = f"/ses-{uuid.uuid4().hex[:8]}"
    subscribe(fast_server, customer, path, receiver, "delivered", "permanent_fail", "complained", "opened",
              "clicked")
    source = create_source(fast_server, customer, "ses", topic_arn=TOPIC)
    url = source["intake_url"]
    certificate_gets = sns.certificate_gets  # the stand-in serves every backend's server
    assert source["config"] == {"topic_arn": TOPIC}

    token = uuid.uuid4().hex
    confirm = httpx.post(url, content=sns.sign(sns.confirmation(token)), headers={"Content-Type": "text/plain"})
    assert confirm.status_code == 200, confirm.text
    assert [g for g in sns.gets if token in g] == [f"/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}"]

    jane, richard = f"jane-{uuid.uuid4().hex[:6]}@example.com", f"richard-{uuid.uuid4().hex[:6]}@example.com"
    envelopes = {kind: sns.notification(message, SignatureVersion="2" if kind == "Delivery" else "1")
                 for kind, message in ses_messages(jane, richard).items()}
    for kind, envelope in envelopes.items():
        r = httpx.post(url, content=sns.sign(envelope))
        assert r.status_code == 200, (kind, r.text)
    sent = received_event_data(receiver, path, 6)  # the bounce names two recipients
    assert sorted((d["source"]["event"], d["event"], d["recipient"]) for d in sent) == sorted([
        ("Bounce", "failed", jane), ("Bounce", "failed", richard), ("Complaint", "complained", richard),
        ("Delivery", "delivered", jane), ("Open", "opened", jane), ("Click", "clicked", jane)])
    by_kind = {d["source"]["event"]: d for d in sent}
    bounce = by_kind["Bounce"]
    assert bounce["severity"] == "permanent" and bounce["bounce-classification"] == "Permanent/General"
    assert bounce["delivery-status"]["message"] == "smtp; 550 5.1.1 user unknown"
    assert bounce["message"]["headers"]["message-id"] == "custom-message-ID"
    assert bounce["user-variables"] == {"campaign": "spring"}
    assert by_kind["Delivery"]["delivery-status"]["message"] == "250 2.6.0 Message received"
    assert by_kind["Click"]["url"].startswith("http://docs.aws.amazon.com/")
    assert by_kind["Open"]["ip"] == "192.0.2.1"
    assert {e["event"] for e in events(fast_server, customer).values()} >= {"permanent_fail", "complained"}

    again = httpx.post(url, content=sns.sign(envelopes["Bounce"]))  # SNS's retry
    assert again.status_code == 200 and again.json()["new"] == 0
    time.sleep(0.5)
    assert len(receiver.on(path)) == 6 == delivery_count(fast_server, customer)
    assert sns.certificate_gets - certificate_gets <= 1  # fetched once per process, then cached


def test_ses_refusals_are_4xx_and_counted(fast_server: ServerProcess, customer: Tenant, sns: SnsStandIn) -> None:
    url = create_source(fast_server, customer, "ses", topic_arn=TOPIC)["intake_url"]
    message = ses_messages("jane@example.com", "richard@example.com")["Delivery"]
    envelope = sns.notification(message)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused(fast_server, url, "ses", "signature", 401, content=sns.sign(envelope, key=other_key))
    refused(fast_server, url, "ses", "signature", 401,
            content=sns.sign({**envelope, "TopicArn": "arn:aws:sns:us-east-1:999999999999:someone-else"}))
    refused(fast_server, url, "ses", "signature", 401,
            content=sns.sign({**envelope, "SigningCertURL": "https://sns.evil.example/cert.pem"}))
    refused(fast_server, url, "ses", "signature", 401,
            content=sns.sign({**envelope, "SigningCertURL": "http://sns.us-east-1.amazonaws.com/cert.pem"}))
    refused(fast_server, url, "ses", "signature", 401, content=json.dumps(message))  # raw message delivery
    tampered = json.loads(sns.sign(envelope))
    tampered["Message"] = tampered["Message"].replace("jane@", "mallory@")
    refused(fast_server, url, "ses", "signature", 401, content=json.dumps(tampered))
    refused(fast_server, url, "ses", "certificate", 502,
            content=sns.sign({**envelope, "SigningCertURL": sns.url("/missing.pem")}))
    refused(fast_server, url, "ses", "malformed", 400, content=b"{not json")
    refused(fast_server, url, "ses", "malformed", 400, content=sns.sign(sns.notification({"hello": "world"})))
    refused(fast_server, url, "ses", "unknown_event", 400,
            content=sns.sign(sns.notification({**message, "eventType": "Teleport"})))
    assert events(fast_server, customer) == {}
    no_topic = httpx.post(f"{fast_server.base_url}/v1/sources", headers={"Authorization": f"Bearer {customer.api_key}"},
                          json={"provider": "ses", "domain": customer.domain})
    assert no_topic.status_code == 422 and "topic_arn" in no_topic.json()["errors"]
