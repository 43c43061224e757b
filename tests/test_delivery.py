"""Deliveries end to end: a real ``mailhooks serve`` (fresh database per backend), webhooks made through
the dialects, events through ``POST /v1/events``, and a real receiver on 127.0.0.1.

The server runs with a short retry schedule (0.2 s x 3) and a short delivery timeout so every case
finishes in seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mailgun.security import SecurityGuard
from standardwebhooks import Webhook as StandardWebhook

from tests.support import (
    Provisioner,
    Receiver,
    ServerProcess,
    Tenant,
)

TIMEOUT = 3.0  # the hanging receiver costs exactly this; long enough to hold under CPU load
FAST_ENV = {
    "MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1",
    "MAILHOOKS_RATE_LIMIT": "100000/minute",
    "MAILHOOKS_RETRY_SCHEDULE": "0.2,0.2,0.2",
    "MAILHOOKS_DELIVERY_TIMEOUT": str(TIMEOUT),
    "MAILHOOKS_POLL_INTERVAL": "0.1",
    "MAILHOOKS_LEASE_SECONDS": "10",
}


@pytest.fixture(scope="module")
def fast_server(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(module_db, log_dir=tmp_path_factory.mktemp("delivery-logs"), env=FAST_ENV)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture()
def customer(module_db: str, fast_server: ServerProcess) -> Tenant:
    return Provisioner(module_db).tenant()


def native(customer: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {customer.api_key}"}


def mailgun_subscribe(fast_server: ServerProcess, customer: Tenant, event: str, *urls: str) -> None:
    r = httpx.post(f"{fast_server.base_url}/v3/domains/{customer.domain}/webhooks", auth=("api", customer.api_key),
                   data={"id": event, "url": list(urls)})
    assert r.status_code == 200, r.text


def kirim_subscribe(fast_server: ServerProcess, customer: Tenant, event: str, url: str) -> str:
    r = httpx.post(f"{fast_server.base_url}/api/domains/{customer.domain}/webhooks",
                   auth=(customer.username, customer.api_key),
                   json={"type": event, "url": url})
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["webhook_guid"])


def emit(fast_server: ServerProcess, customer: Tenant, event: str = "delivered", **fields: Any) -> str:
    body = {"domain": customer.domain, "event": event, "recipient": "alice@example.com", **fields}
    r = httpx.post(f"{fast_server.base_url}/v1/events", json=body, headers=native(customer))
    assert r.status_code == 202, r.text
    return str(r.json()["ids"][0])


def deliveries(fast_server: ServerProcess, customer: Tenant, **params: Any) -> list[dict[str, Any]]:
    r = httpx.get(f"{fast_server.base_url}/v1/deliveries", params=params, headers=native(customer))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def wait_delivery(fast_server: ServerProcess, customer: Tenant, event_id: str, url: str, statuses: tuple[str, ...],
                  timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        last = [d for d in deliveries(fast_server, customer, event_id=event_id) if d["url"] == url]
        if last and last[0]["status"] in statuses:
            r = httpx.get(f"{fast_server.base_url}/v1/deliveries/{last[0]['id']}", headers=native(customer))
            assert r.status_code == 200
            return dict(r.json())
        time.sleep(0.1)
    raise AssertionError(f"delivery to {url} not in {statuses}: {last}")


def path_of(receiver: Receiver) -> str:
    return f"/{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------------- signatures


def test_every_format_verifies(fast_server: ServerProcess, customer: Tenant, receiver: Receiver) -> None:
    mg_path, kirim_path = path_of(receiver), path_of(receiver)
    mailgun_subscribe(fast_server, customer, "permanent_fail", receiver.url(mg_path))
    kirim_subscribe(fast_server, customer, "permanent_fail", receiver.url(kirim_path))
    whsec = httpx.get(f"{fast_server.base_url}/v1/signing-key", headers=native(customer)).json()["whsec"]
    event_id = emit(fast_server, customer, "permanent_fail", reason="suppress-bounce", tags=["a", "b"],
                    message={"headers": {"message-id": "m1@x", "from": "s@x.example", "subject": "Hi"}})

    (mg,) = receiver.wait_for(mg_path, 1)
    payload = json.loads(mg.body)
    sig = payload["signature"]
    assert SecurityGuard.verify_webhook(customer.signing_key, sig["token"], sig["timestamp"], sig["signature"])
    data = payload["event-data"]
    assert data["event"] == "failed" and data["severity"] == "permanent" and data["id"] == event_id
    assert data["domain"] == {"name": customer.domain} and data["account"] == {"id": customer.account_guid}
    StandardWebhook(whsec).verify(mg.body, mg.headers)

    (kirim,) = receiver.wait_for(kirim_path, 1)
    flat = json.loads(kirim.body)
    secret = customer.domains[customer.domain]
    expected = hmac.new((secret + flat["message_guid"]).encode(), b"", hashlib.sha256).hexdigest()
    assert flat["signature"] == expected
    assert flat["event_type"] == "permanent_fail" and flat["tags"] == "a,b" and flat["message_guid"] == event_id
    StandardWebhook(whsec).verify(kirim.body, kirim.headers)
    assert kirim.headers["webhook-id"] != mg.headers["webhook-id"]


def test_fan_out_deduplicates_account_and_domain_level(fast_server: ServerProcess, customer: Tenant,
                                                       receiver: Receiver) -> None:
    shared, other = path_of(receiver), path_of(receiver)
    mailgun_subscribe(fast_server, customer, "opened", receiver.url(shared), receiver.url(other))
    r = httpx.post(f"{fast_server.base_url}/v1/webhooks", auth=("api", customer.api_key),
                   data={"url": receiver.url(shared), "event_types": "opened"})
    assert r.status_code == 200, r.text
    event_id = emit(fast_server, customer, "opened")
    receiver.wait_for(shared, 1)
    receiver.wait_for(other, 1)
    time.sleep(0.5)
    assert len(receiver.on(shared)) == 1
    assert len(deliveries(fast_server, customer, event_id=event_id)) == 2
    emit(fast_server, customer, "clicked")  # no subscriber: nothing is sent, nothing fails
    assert len(deliveries(fast_server, customer)) == 2


# ---------------------------------------------------------------------- retry policy


def test_500_three_times_then_200_succeeds_on_fourth_attempt(fast_server: ServerProcess, customer: Tenant,
                                                             receiver: Receiver) -> None:
    path = path_of(receiver)
    receiver.script(path, [500, 500, 500, 200])
    mailgun_subscribe(fast_server, customer, "delivered", receiver.url(path))
    event_id = emit(fast_server, customer)
    detail = wait_delivery(fast_server, customer, event_id, receiver.url(path), ("succeeded", "failed"))
    assert detail["status"] == "succeeded"
    assert detail["attempt_count"] == 4
    assert [a["status_code"] for a in detail["attempts"]] == [500, 500, 500, 200]
    assert [a["number"] for a in detail["attempts"]] == [1, 2, 3, 4]
    got = receiver.on(path)
    assert len(got) == 4
    assert len({r.headers["webhook-id"] for r in got}) == 1  # stable across retries
    assert len({json.loads(r.body)["signature"]["token"] for r in got}) == 4  # signed afresh


def test_500_forever_fails_after_the_schedule(fast_server: ServerProcess, customer: Tenant, receiver: Receiver) -> None:
    path = path_of(receiver)
    receiver.script(path, [503])
    mailgun_subscribe(fast_server, customer, "delivered", receiver.url(path))
    event_id = emit(fast_server, customer)
    detail = wait_delivery(fast_server, customer, event_id, receiver.url(path), ("failed",))
    assert detail["attempt_count"] == 4 and detail["last_status_code"] == 503
    # a manual retry is one more attempt (and replays whatever the status)
    receiver.script(path, [200])
    r = httpx.post(f"{fast_server.base_url}/v1/deliveries/{detail['id']}/retry", headers=native(customer))
    assert r.status_code == 202
    detail = wait_delivery(fast_server, customer, event_id, receiver.url(path), ("succeeded",))
    assert detail["attempt_count"] == 5


def test_webhook_id_is_unguessable_and_stable_across_replays(fast_server: ServerProcess, customer: Tenant,
                                                              receiver: Receiver) -> None:
    """``webhook-id`` does not give away the platform's delivery counter (it was ``msg_<delivery id>``),
    and stays the delivery's own on a manual retry, as the native API shows it."""
    path = path_of(receiver)
    mailgun_subscribe(fast_server, customer, "delivered", receiver.url(path))
    first, second = emit(fast_server, customer), emit(fast_server, customer)
    one = wait_delivery(fast_server, customer, first, receiver.url(path), ("succeeded",))
    two = wait_delivery(fast_server, customer, second, receiver.url(path), ("succeeded",))
    assert two["id"] == one["id"] + 1  # consecutive deliveries...
    sent = {json.loads(r.body)["event-data"]["id"]: r.headers["webhook-id"] for r in receiver.wait_for(path, 2)}
    assert sent == {first: one["message_id"], second: two["message_id"]}
    for detail in (one, two):  # ...whose ids show neither the counter nor each other
        assert re.fullmatch(r"msg_[a-z2-7]{26}", detail["message_id"]), detail["message_id"]
    assert sum(a != b for a, b in zip(one["message_id"][4:], two["message_id"][4:], strict=True)) >= 13
    listed = {d["id"]: d["message_id"] for d in deliveries(fast_server, customer, event_id=first)}
    assert listed == {one["id"]: one["message_id"]}

    r = httpx.post(f"{fast_server.base_url}/v1/deliveries/{one['id']}/retry", headers=native(customer))
    assert r.status_code == 202 and r.json()["message_id"] == one["message_id"]
    receiver.wait_for(path, 3)
    assert receiver.on(path)[-1].headers["webhook-id"] == one["message_id"]
    whsec = httpx.get(f"{fast_server.base_url}/v1/signing-key", headers=native(customer)).json()["whsec"]
    headers = StandardWebhook(whsec)
    headers.verify(receiver.on(path)[-1].body, receiver.on(path)[-1].headers)  # signed with that id


def test_406_stops_at_once(fast_server: ServerProcess, customer: Tenant, receiver: Receiver) -> None:
    path = path_of(receiver)
    receiver.script(path, [406])
    mailgun_subscribe(fast_server, customer, "delivered", receiver.url(path))
    event_id = emit(fast_server, customer)
    detail = wait_delivery(fast_server, customer, event_id, receiver.url(path), ("rejected",))
    time.sleep(0.6)
    assert len(receiver.on(path)) == 1 and detail["attempt_count"] == 1


def test_410_disables_the_webhook_and_recovery_sends_later_events(fast_server: ServerProcess, customer: Tenant,
                                                                  receiver: Receiver) -> None:
    path = path_of(receiver)
    receiver.script(path, [410, 200])
    guid = kirim_subscribe(fast_server, customer, "delivered", receiver.url(path))
    first = emit(fast_server, customer)
    detail = wait_delivery(fast_server, customer, first, receiver.url(path), ("rejected",))
    assert detail["attempt_count"] == 1 and detail["webhook"] == guid
    second = emit(fast_server, customer)  # arrives while disabled: stored as failed, not sent, not lost
    detail = wait_delivery(fast_server, customer, second, receiver.url(path), ("failed",))
    assert detail["attempt_count"] == 0 and "disabled" in detail["last_error"]
    assert len(receiver.on(path)) == 1

    r = httpx.post(f"{fast_server.base_url}/v1/subscriptions/{guid}/enable", headers=native(customer))
    assert r.status_code == 200 and r.json() == {"guid": guid, "enabled": True}
    r = httpx.post(f"{fast_server.base_url}/v1/domains/{customer.domain}/deliveries/recover",
                   params={"since": time.time() - 60}, headers=native(customer))
    assert r.status_code == 202 and r.json()["requeued"] == 1
    wait_delivery(fast_server, customer, second, receiver.url(path), ("succeeded",))
    assert len(receiver.on(path)) == 2


def test_hanging_receiver_costs_one_timeout_and_does_not_delay_others(fast_server: ServerProcess, customer: Tenant,
                                                                      receiver: Receiver) -> None:
    slow, fast = path_of(receiver), path_of(receiver)
    receiver.hang(slow)
    mailgun_subscribe(fast_server, customer, "delivered", receiver.url(slow), receiver.url(fast))
    started = time.time()
    event_ids = [emit(fast_server, customer, id=f"hang-{i}-{uuid.uuid4().hex[:6]}") for i in range(5)]
    got = receiver.wait_for(fast, 5, timeout=TIMEOUT)
    assert max(r.at for r in got) - started < TIMEOUT, "deliveries to the fast URL waited for the slow one"
    detail = wait_delivery(fast_server, customer, event_ids[0], receiver.url(slow), ("pending", "failed"), timeout=10)
    first = detail["attempts"][0]
    assert first["status_code"] is None and "timeout" in first["error"]
    assert TIMEOUT * 0.9 <= first["duration_ms"] / 1000 < TIMEOUT + 1.5


# ---------------------------------------------------------------------- ingest and the native API


def test_ingest_batch_idempotent_and_validated(fast_server: ServerProcess, customer: Tenant,
                                               receiver: Receiver) -> None:
    path = path_of(receiver)
    mailgun_subscribe(fast_server, customer, "accepted", receiver.url(path))
    batch = [{"id": f"b-{i}", "domain": customer.domain, "event": "accepted", "recipient": f"u{i}@x.example"}
             for i in range(20)]
    r = httpx.post(f"{fast_server.base_url}/v1/events", json=batch, headers=native(customer))
    assert r.status_code == 202 and r.json() == {"ids": [f"b-{i}" for i in range(20)]}
    receiver.wait_for(path, 20)
    r = httpx.post(f"{fast_server.base_url}/v1/events", json=batch[:5], headers=native(customer))
    assert r.status_code == 202  # acknowledged again, not delivered again
    time.sleep(0.5)
    assert len(receiver.on(path)) == 20

    bad = httpx.post(f"{fast_server.base_url}/v1/events", json=[batch[0], {"domain": customer.domain, "event": "nope"}],
                     headers=native(customer))
    assert bad.status_code == 422
    assert set(bad.json()["errors"]) == {"1.event", "1.recipient"} and bad.json()["message"]
    assert httpx.post(f"{fast_server.base_url}/v1/events", content=b"{", headers=native(customer)).status_code == 422
    too_many = httpx.post(f"{fast_server.base_url}/v1/events", json=[batch[0]] * 1001, headers=native(customer))
    assert too_many.status_code == 422
    missing = httpx.post(f"{fast_server.base_url}/v1/events", json={**batch[0], "domain": "nope.example"},
                         headers=native(customer))
    assert missing.status_code == 404 and missing.json() == {"message": "Domain not found"}
    assert httpx.post(f"{fast_server.base_url}/v1/events", json=batch[0]).status_code == 401

    events = httpx.get(f"{fast_server.base_url}/v1/events", params={"limit": 7}, headers=native(customer)).json()
    assert len(events["items"]) == 7 and events["next_cursor"]
    assert events["items"][0]["data"]["event"] == "accepted"
    rest = httpx.get(f"{fast_server.base_url}/v1/events", params={"limit": 100, "cursor": events["next_cursor"]},
                     headers=native(customer)).json()
    assert len(rest["items"]) == 13 and rest["next_cursor"] is None


def test_tenancy(fast_server: ServerProcess, customer: Tenant, module_db: str, receiver: Receiver) -> None:
    path = path_of(receiver)
    mailgun_subscribe(fast_server, customer, "delivered", receiver.url(path))
    event_id = emit(fast_server, customer)
    mine = wait_delivery(fast_server, customer, event_id, receiver.url(path), ("succeeded",))
    other = Provisioner(module_db).tenant()
    assert deliveries(fast_server, other) == []
    assert httpx.get(f"{fast_server.base_url}/v1/events", headers=native(other)).json()["items"] == []
    for method, url in [("GET", f"/v1/deliveries/{mine['id']}"), ("POST", f"/v1/deliveries/{mine['id']}/retry"),
                        ("POST", f"/v1/subscriptions/{mine['webhook']}/enable")]:
        r = httpx.request(method, fast_server.base_url + url, headers=native(other))
        assert r.status_code == 404, (url, r.text)
    r = httpx.post(f"{fast_server.base_url}/v1/events", json={"domain": customer.domain, "event": "delivered",
                                                      "recipient": "a@b.example"}, headers=native(other))
    assert r.status_code == 404
    r = httpx.post(f"{fast_server.base_url}/v1/domains/{customer.domain}/deliveries/recover", params={"since": 0},
                   headers=native(other))
    assert r.status_code == 404
    assert deliveries(fast_server, customer, status="succeeded", webhook=mine["webhook"])[0]["id"] == mine["id"]


def test_metrics_and_health(fast_server: ServerProcess) -> None:
    health = httpx.get(f"{fast_server.base_url}/healthz")
    assert health.status_code == 200 and health.json()["dispatcher"] == "ok"
    text = httpx.get(f"{fast_server.base_url}/metrics").text
    for name in ("mailhooks_deliveries_total", "mailhooks_attempt_duration_seconds_bucket",
                 "mailhooks_due_deliveries", "mailhooks_oldest_due_age_seconds"):
        assert name in text


def test_cli_emit(fast_server: ServerProcess, customer: Tenant, module_db: str, receiver: Receiver) -> None:
    import os
    import subprocess

    from tests.support import MAILHOOKS

    path = path_of(receiver)
    mailgun_subscribe(fast_server, customer, "clicked", receiver.url(path))
    env = {**os.environ, "MAILHOOKS_DATABASE_URL": module_db}
    out = subprocess.run([MAILHOOKS, "events", "emit", customer.domain, "clicked", "--recipient", "bob@x.example",
                          "--json"], env=env, capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent)
    assert out.returncode == 0, out.stderr
    emitted = json.loads(out.stdout)["id"]
    (got,) = receiver.wait_for(path, 1)
    assert json.loads(got.body)["event-data"]["id"] == emitted
