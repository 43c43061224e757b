"""Signing-key rotation with overlap, end to end: a real ``mailhooks serve`` per backend, a real receiver on
127.0.0.1, and the receivers' own verifiers (the PyPI ``standardwebhooks`` library, Mailgun's SDK check).

After a rotation (native ``POST /v1/signing-key/rotate``, Mailgun's ``POST /v5/accounts/http_signing_key``)
``webhook-signature`` carries the new key's signature and the previous key's, so a receiver holding
either secret accepts the delivery, a retry queued before the rotation included; Mailgun's body signature
is made with the new key only. Once the overlap has run out the previous key signs nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from mailgun.security import SecurityGuard
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from mailhooks.config import Settings
from mailhooks.core.accounts import whsec
from mailhooks.core.payloads import PreparedEvent, sample_event, standard_signature
from tests.support import Provisioner, Received, Receiver, ServerProcess, Tenant

OVERLAP_SECONDS = 600
SERVER_ENV = {
    "MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1",
    "MAILHOOKS_RATE_LIMIT": "100000/minute",
    # A failed attempt comes back 2 s later: time enough to rotate the key in between.
    "MAILHOOKS_RETRY_SCHEDULE": "2,2,2",
    "MAILHOOKS_DELIVERY_TIMEOUT": "3",
    "MAILHOOKS_POLL_INTERVAL": "0.1",
    "MAILHOOKS_LEASE_SECONDS": "10",
    "MAILHOOKS_SIGNING_KEY_OVERLAP": "10m",
}


@pytest.fixture(scope="module")
def server(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(module_db, log_dir=tmp_path_factory.mktemp("rotation-logs"), env=SERVER_ENV)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture()
def customer(module_db: str, server: ServerProcess) -> Tenant:
    return Provisioner(module_db).tenant(prefix="rot")


def native(customer: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {customer.api_key}"}


def subscribe(server: ServerProcess, customer: Tenant, receiver: Receiver) -> str:
    path = f"/{uuid.uuid4().hex[:12]}"
    r = httpx.post(f"{server.base_url}/v3/domains/{customer.domain}/webhooks", auth=("api", customer.api_key),
                   data={"id": "delivered", "url": receiver.url(path)})
    assert r.status_code == 200, r.text
    return path


def emit(server: ServerProcess, customer: Tenant) -> None:
    body = {"domain": customer.domain, "event": "delivered", "recipient": "alice@example.com"}
    r = httpx.post(f"{server.base_url}/v1/events", json=body, headers=native(customer))
    assert r.status_code == 202, r.text


def rotate(server: ServerProcess, customer: Tenant) -> dict[str, Any]:
    r = httpx.post(f"{server.base_url}/v1/signing-key/rotate", headers=native(customer))
    assert r.status_code == 200, r.text
    return dict(r.json())


def verifies(key: str, request: Received) -> bool:
    """What a Standard Webhooks receiver holding ``key`` concludes."""
    try:
        StandardWebhook(whsec(key)).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


def mailgun_verifies(key: str, request: Received) -> bool:
    sig = json.loads(request.body)["signature"]
    return bool(SecurityGuard.verify_webhook(key, sig["token"], sig["timestamp"], sig["signature"]))


def signatures(request: Received) -> list[str]:
    return request.headers["webhook-signature"].split(" ")


def test_native_rotation_signs_with_both_keys(server: ServerProcess, customer: Tenant, receiver: Receiver) -> None:
    path = subscribe(server, customer, receiver)
    old = customer.signing_key
    before = time.time()
    answer = rotate(server, customer)

    new = answer["http_signing_key"]
    assert set(answer) == {"http_signing_key", "whsec", "previous_valid_until"}
    assert new != old and new.startswith("key-") and len(new) == 36 and answer["whsec"] == whsec(new)
    until = datetime.fromisoformat(answer["previous_valid_until"]).timestamp()
    assert answer["previous_valid_until"].endswith("Z")
    assert before + OVERLAP_SECONDS - 2 <= until <= time.time() + OVERLAP_SECONDS + 1
    assert old not in json.dumps(answer)  # the previous key is never shown again
    current = httpx.get(f"{server.base_url}/v1/signing-key", headers=native(customer)).json()
    assert current["http_signing_key"] == new and old not in json.dumps(current)

    emit(server, customer)
    (got,) = receiver.wait_for(path, 1)
    assert len(signatures(got)) == 2  # newest first: the new key's entry, then the previous key's
    assert verifies(new, got) and verifies(old, got)
    assert not verifies("key-" + "0" * 32, got)
    assert mailgun_verifies(new, got) and not mailgun_verifies(old, got)


def test_retry_queued_before_rotation_verifies_with_both(server: ServerProcess, customer: Tenant,
                                                         receiver: Receiver) -> None:
    path = subscribe(server, customer, receiver)
    receiver.script(path, [500, 200])
    old = customer.signing_key
    emit(server, customer)
    (first,) = receiver.wait_for(path, 1)
    assert signatures(first) and len(signatures(first)) == 1 and verifies(old, first)

    new = rotate(server, customer)["http_signing_key"]  # the retry is due 2 s after the failed attempt
    retry = receiver.wait_for(path, 2)[1]
    assert retry.headers["webhook-id"] == first.headers["webhook-id"]
    assert len(signatures(retry)) == 2 and verifies(new, retry) and verifies(old, retry)
    assert mailgun_verifies(new, retry) and not mailgun_verifies(old, retry)


def test_mailgun_endpoint_rotates_with_overlap(server: ServerProcess, customer: Tenant, receiver: Receiver) -> None:
    path = subscribe(server, customer, receiver)
    old = customer.signing_key
    r = httpx.post(f"{server.base_url}/v5/accounts/http_signing_key", auth=("api", customer.api_key),
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200
    new = r.json()["http_signing_key"]
    # Mailgun's answer, byte for byte: nothing added that its SDKs would not expect.
    assert r.content == json.dumps({"message": "regenerated HTTP signing key for account", "http_signing_key": new},
                                   separators=(",", ":")).encode() + b"\n"

    emit(server, customer)
    (got,) = receiver.wait_for(path, 1)
    assert verifies(new, got) and verifies(old, got) and mailgun_verifies(new, got)


def test_second_rotation_drops_the_oldest_key(server: ServerProcess, customer: Tenant, receiver: Receiver) -> None:
    path = subscribe(server, customer, receiver)
    first = customer.signing_key
    second = rotate(server, customer)["http_signing_key"]
    third = rotate(server, customer)["http_signing_key"]

    emit(server, customer)
    (got,) = receiver.wait_for(path, 1)
    assert len(signatures(got)) == 2
    assert verifies(third, got) and verifies(second, got) and not verifies(first, got)


def test_rotating_one_account_touches_no_other(module_db: str, server: ServerProcess, customer: Tenant,
                                               receiver: Receiver) -> None:
    other = Provisioner(module_db).tenant(prefix="rot")
    other_path = subscribe(server, other, receiver)
    rotate(server, customer)

    keys = httpx.get(f"{server.base_url}/v1/signing-key", headers=native(other)).json()
    assert keys["http_signing_key"] == other.signing_key
    emit(server, other)
    (got,) = receiver.wait_for(other_path, 1)
    assert len(signatures(got)) == 1 and verifies(other.signing_key, got) and mailgun_verifies(other.signing_key, got)
    assert not verifies(customer.signing_key, got)


def test_previous_key_stops_after_the_overlap(module_db: str, server: ServerProcess, customer: Tenant,
                                              receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> None:
    # A second process on the same database with a 1 s overlap: the overlap is fixed at rotation time.
    short = ServerProcess(module_db, log_dir=tmp_path_factory.mktemp("rotation-short"),
                          env={**SERVER_ENV, "MAILHOOKS_SIGNING_KEY_OVERLAP": "1s"})
    short.start(migrate=False)
    try:
        path = subscribe(server, customer, receiver)
        old = customer.signing_key
        answer = rotate(short, customer)
    finally:
        short.stop()
    until = datetime.fromisoformat(answer["previous_valid_until"]).timestamp()
    assert until <= time.time() + 2
    time.sleep(max(0.0, until + 1.1 - time.time()))  # the answer is to the second

    emit(server, customer)
    (got,) = receiver.wait_for(path, 1)
    assert len(signatures(got)) == 1
    assert verifies(answer["http_signing_key"], got) and not verifies(old, got)


def test_overlap_setting_reads_seconds_or_durations() -> None:
    def overlap(value: str) -> float:
        return Settings.from_env({"MAILHOOKS_SIGNING_KEY_OVERLAP": value}).signing_key_overlap

    assert Settings.from_env({}).signing_key_overlap == 24 * 3600
    assert overlap("90") == 90 and overlap("0.5") == 0.5 and overlap("0") == 0
    assert overlap("24h") == 86400 and overlap("1h30m") == 5400 and overlap("2d") == 172800 and overlap("45s") == 45
    for bad in ("soon", "1h 30m", "-5", "h", "10x"):
        with pytest.raises(ValueError, match="MAILHOOKS_SIGNING_KEY_OVERLAP"):
            overlap(bad)


def test_openapi_declares_the_rotation(server: ServerProcess) -> None:
    document = httpx.get(f"{server.base_url}/openapi.json").json()
    operation = document["paths"]["/v1/signing-key/rotate"]["post"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RotatedSigningKey"}
    assert set(document["components"]["schemas"]["RotatedSigningKey"]["required"]) == {
        "http_signing_key", "whsec", "previous_valid_until"}


def test_render_adds_the_previous_key_while_it_lasts() -> None:
    prepared = PreparedEvent.prepare("mailgun", sample_event("delivered", "example.test", "acct"), "secret")
    new, old = "key-" + "1" * 32, "key-" + "2" * 32
    _, alone = prepared.render(new, "msg_x", now=1000.0)
    body, both = prepared.render(new, "msg_x", now=1000.0, previous_key=old, previous_until=1000.5)
    _, after = prepared.render(new, "msg_x", now=1000.5, previous_key=old, previous_until=1000.5)

    assert both["webhook-signature"] == (standard_signature(new, "msg_x", 1000, body) + " "
                                         + standard_signature(old, "msg_x", 1000, body))  # newest first
    assert len(alone["webhook-signature"].split(" ")) == 1
    assert len(after["webhook-signature"].split(" ")) == 1  # at its end the previous key no longer signs
