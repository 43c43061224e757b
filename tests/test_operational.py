"""Operational webhooks and email alerts end to end: a real ``mailhooks serve`` per backend, a real receiver
on 127.0.0.1 for both the subscriptions and the operational webhooks, and a real SMTP server (aiosmtpd)
in this process whose received messages the tests read.

The server runs with a short retry schedule (0.2 s x 3: four attempts, then ``failed``) and an alert
interval of ``INTERVAL`` seconds instead of an hour, so the throttle and its digest show in seconds.
"""

from __future__ import annotations

import email
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from standardwebhooks import Webhook as StandardWebhook

from tests.faults.loopback import free_port
from tests.support import MAILHOOKS, Provisioner, Receiver, ServerProcess, Tenant

INTERVAL = 6.0  # MAILHOOKS_ALERT_INTERVAL: one email per subscription this often, then a digest
KINDS = ["webhook.disabled", "webhook.failing", "webhook.recovered", "delivery.exhausted"]


@dataclass
class Mail:
    to: list[str]
    message: Message
    at: float

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        payload = self.message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode()

    def kinds(self) -> list[str]:
        """The operational event of each line of the email (one line per event)."""
        return [kind for line in self.body.splitlines() for kind in KINDS if f"  {kind}  " in line]


class Inbox:
    """A real SMTP server on 127.0.0.1 (aiosmtpd), keeping every message it accepts."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        with self.lock:
            self.mails.append(Mail(list(envelope.rcpt_tos), email.message_from_bytes(envelope.content), time.time()))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[Mail]:
        with self.lock:
            return [m for m in self.mails if address in m.to]

    def wait_for(self, address: str, count: int, timeout: float = 20.0) -> list[Mail]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.to(address)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{address}: expected {count} emails, got {len(self.to(address))}")


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rcv = Receiver().start()
    yield rcv
    rcv.stop()


@pytest.fixture(scope="module")
def ops_server(module_db: str, inbox: Inbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1",
        "MAILHOOKS_RATE_LIMIT": "100000/minute",
        "MAILHOOKS_RETRY_SCHEDULE": "0.2,0.2,0.2",
        "MAILHOOKS_DELIVERY_TIMEOUT": "3",
        "MAILHOOKS_POLL_INTERVAL": "0.1",
        "MAILHOOKS_SMTP_URL": f"smtp://127.0.0.1:{inbox.port}",
        "MAILHOOKS_ALERT_FROM": "alerts@mailhooks.test",
        "MAILHOOKS_ALERT_INTERVAL": str(INTERVAL),
    }
    proc = ServerProcess(module_db, log_dir=tmp_path_factory.mktemp("operational-logs"), env=env)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture()
def customer(module_db: str, ops_server: ServerProcess) -> Tenant:
    return Provisioner(module_db).tenant(prefix="ops")


def native(customer: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {customer.api_key}"}


def fresh_path() -> str:
    return f"/{uuid.uuid4().hex[:12]}"


def fresh_address(name: str) -> str:
    """An address of this test alone: the inbox outlives one backend's server."""
    return f"{name}-{uuid.uuid4().hex[:8]}@example.org"


def listen(server: ServerProcess, customer: Tenant, url: str, kinds: list[str] | None = None) -> dict[str, Any]:
    r = httpx.post(f"{server.base_url}/v1/operational-webhooks", headers=native(customer),
                   json={"url": url, "event_types": kinds or KINDS})
    assert r.status_code == 201, r.text
    return dict(r.json())


def alert_to(server: ServerProcess, customer: Tenant, address: str | None) -> None:
    r = httpx.put(f"{server.base_url}/v1/alerts", headers=native(customer), json={"email": address})
    assert r.status_code == 200, r.text
    assert r.json() == {"email": address}


def subscribe(server: ServerProcess, customer: Tenant, url: str, event: str = "delivered") -> None:
    r = httpx.post(f"{server.base_url}/v3/domains/{customer.domain}/webhooks", auth=("api", customer.api_key),
                   data={"id": event, "url": url})
    assert r.status_code == 200, r.text


def emit(server: ServerProcess, customer: Tenant, event: str = "delivered") -> str:
    r = httpx.post(f"{server.base_url}/v1/events", headers=native(customer),
                   json={"domain": customer.domain, "event": event, "recipient": "bob@example.org"})
    assert r.status_code == 202, r.text
    return str(r.json()["ids"][0])


def whsec(server: ServerProcess, customer: Tenant) -> str:
    return str(httpx.get(f"{server.base_url}/v1/signing-key", headers=native(customer)).json()["whsec"])


def kinds_heard(receiver: Receiver, path: str) -> list[str]:
    return [json.loads(r.body)["type"] for r in receiver.on(path)]


# ---------------------------------------------------------------------- the transitions, heard


def test_a_410_disables_and_both_the_webhook_and_the_email_arrive_for_that_account_only(
        ops_server: ServerProcess, customer: Tenant, module_db: str, receiver: Receiver, inbox: Inbox) -> None:
    bystander = Provisioner(module_db).tenant(prefix="ops")
    owner_mail, bystander_mail = fresh_address("owner"), fresh_address("bystander")
    ops_path, bystander_ops, gone, fine = fresh_path(), fresh_path(), fresh_path(), fresh_path()
    listen(ops_server, customer, receiver.url(ops_path))
    alert_to(ops_server, customer, owner_mail)
    listen(ops_server, bystander, receiver.url(bystander_ops))
    alert_to(ops_server, bystander, bystander_mail)
    subscribe(ops_server, bystander, receiver.url(fine))
    receiver.script(gone, [410])
    subscribe(ops_server, customer, receiver.url(gone))

    emit(ops_server, bystander)
    event_id = emit(ops_server, customer)

    (heard,) = receiver.wait_for(ops_path, 1)
    StandardWebhook(whsec(ops_server, customer)).verify(heard.body, heard.headers)  # signed like every delivery
    body = json.loads(heard.body)
    assert body["type"] == "webhook.disabled"
    assert "410" in body["data"]["reason"]
    assert body["data"]["subscription"]["url"] == receiver.url(gone)
    assert body["data"]["subscription"]["event_type"] == "delivered"
    (mail,) = inbox.wait_for(owner_mail, 1)
    assert mail.message["From"] == "alerts@mailhooks.test"
    assert "webhook.disabled" in mail.subject and receiver.url(gone) in mail.subject
    assert "410" in mail.body
    # The subscription is disabled, and the operational delivery is in the account's delivery log.
    r = httpx.get(f"{ops_server.base_url}/v1/deliveries", headers=native(customer), params={"event_id": event_id})
    assert [d["status"] for d in r.json()["items"]] == ["rejected"]
    receiver.wait_for(fine, 1)
    time.sleep(1.5)  # time enough for anything that should not come
    assert kinds_heard(receiver, ops_path) == ["webhook.disabled"]
    assert receiver.on(bystander_ops) == [] and inbox.to(bystander_mail) == []
    assert len(inbox.to(owner_mail)) == 1


def test_failing_exhausted_recovered_once_per_streak_and_one_email_then_a_digest(
        ops_server: ServerProcess, customer: Tenant, receiver: Receiver, inbox: Inbox) -> None:
    ops_path, flaky = fresh_path(), fresh_path()
    oncall_mail = fresh_address("oncall")
    listen(ops_server, customer, receiver.url(ops_path))
    alert_to(ops_server, customer, oncall_mail)
    receiver.script(flaky, [500])
    subscribe(ops_server, customer, receiver.url(flaky))

    emit(ops_server, customer)
    emit(ops_server, customer)  # the same streak: no second webhook.failing
    receiver.wait_for(ops_path, 3)  # failing, then each delivery exhausted after its four attempts
    assert sorted(kinds_heard(receiver, ops_path)) == ["delivery.exhausted", "delivery.exhausted", "webhook.failing"]
    receiver.script(flaky, [200])
    emit(ops_server, customer)  # an answer ends the streak
    receiver.wait_for(ops_path, 4)
    time.sleep(1.0)
    assert sorted(kinds_heard(receiver, ops_path)) == [
        "delivery.exhausted", "delivery.exhausted", "webhook.failing", "webhook.recovered"]
    for heard in receiver.on(ops_path):
        StandardWebhook(whsec(ops_server, customer)).verify(heard.body, heard.headers)
    exhausted = [json.loads(r.body)["data"] for r in receiver.on(ops_path)
                 if json.loads(r.body)["type"] == "delivery.exhausted"]
    assert all(d["delivery"]["status"] == "failed" and d["delivery"]["attempts"] == 4 for d in exhausted)

    # Email: the first event at once, the rest collected and sent as one digest when the interval is over.
    first, digest = inbox.wait_for(oncall_mail, 2, timeout=INTERVAL + 15)
    assert first.kinds() == ["webhook.failing"]
    assert "digest" in digest.subject
    assert sorted(digest.kinds()) == ["delivery.exhausted", "delivery.exhausted", "webhook.recovered"]
    assert digest.at - first.at >= INTERVAL - 0.5
    time.sleep(1.0)
    assert len(inbox.to(oncall_mail)) == 2


def test_smtp_down_does_not_stop_deliveries_and_the_alert_comes_when_it_is_back(
        ops_server: ServerProcess, customer: Tenant, receiver: Receiver, inbox: Inbox) -> None:
    ops_path, gone, fine = fresh_path(), fresh_path(), fresh_path()
    later_mail = fresh_address("later")
    listen(ops_server, customer, receiver.url(ops_path), ["webhook.disabled"])
    alert_to(ops_server, customer, later_mail)
    receiver.script(gone, [410])
    subscribe(ops_server, customer, receiver.url(gone))
    subscribe(ops_server, customer, receiver.url(fine), "opened")
    inbox.stop()
    try:
        emit(ops_server, customer)
        receiver.wait_for(ops_path, 1)
        for _ in range(6):
            emit(ops_server, customer, "opened")
        receiver.wait_for(fine, 6)  # deliveries go on while every email attempt fails
        assert httpx.get(f"{ops_server.base_url}/healthz").status_code == 200
        time.sleep(1.0)
        assert inbox.to(later_mail) == []
    finally:
        inbox.start()
    (mail,) = inbox.wait_for(later_mail, 1, timeout=INTERVAL + 15)  # retried after the SMTP failure
    assert mail.kinds() == ["webhook.disabled"]


# ---------------------------------------------------------------------- the API


def test_operational_webhooks_api(ops_server: ServerProcess, customer: Tenant, module_db: str) -> None:
    base, headers = ops_server.base_url, native(customer)
    created = listen(ops_server, customer, "http://127.0.0.1:9/ops", ["webhook.disabled", "delivery.exhausted"])
    assert created["event_types"] == ["webhook.disabled", "delivery.exhausted"]
    assert created["url"] == "http://127.0.0.1:9/ops" and created["disabled_reason"] is None
    listed = httpx.get(f"{base}/v1/operational-webhooks", headers=headers).json()["items"]
    assert [item["guid"] for item in listed] == [created["guid"]]
    # They are no dialect's subscriptions: Mailgun's account-level list does not show them.
    r = httpx.get(f"{base}/v1/webhooks", auth=("api", customer.api_key))
    assert r.status_code == 200 and "127.0.0.1:9/ops" not in r.text

    for bad, field in [({"url": "http://127.0.0.1:9/x", "event_types": ["delivered"]}, "event_types"),
                       ({"url": "http://127.0.0.1:9/x", "event_types": []}, "event_types"),
                       ({"url": "http://127.0.0.1:9/x", "event_types": ["webhook.failing"] * 2}, "event_types"),
                       ({"event_types": ["webhook.failing"]}, "url"),
                       ({"url": "ftp://x.example/", "event_types": ["webhook.failing"]}, "url"),
                       ({"url": "http://127.0.0.1:9/x", "event_types": ["webhook.failing"], "secret": "x"}, "secret")]:
        r = httpx.post(f"{base}/v1/operational-webhooks", headers=headers, json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert field in r.json()["errors"], r.text
    assert httpx.post(f"{base}/v1/operational-webhooks", headers=headers, content=b"[").status_code == 422

    other = Provisioner(module_db).tenant(prefix="ops")
    unknown = httpx.delete(f"{base}/v1/operational-webhooks/{uuid.uuid4()}", headers=headers)
    foreign = httpx.delete(f"{base}/v1/operational-webhooks/{created['guid']}", headers=native(other))
    assert unknown.status_code == foreign.status_code == 404
    assert unknown.content == foreign.content
    assert httpx.get(f"{base}/v1/operational-webhooks", headers=native(other)).json() == {"items": []}
    assert httpx.delete(f"{base}/v1/operational-webhooks/{created['guid']}", headers=headers).status_code == 204
    assert httpx.get(f"{base}/v1/operational-webhooks", headers=headers).json() == {"items": []}
    assert httpx.get(f"{base}/v1/operational-webhooks").status_code == 401

    assert httpx.get(f"{base}/v1/alerts", headers=headers).json() == {"email": None}
    alert_to(ops_server, customer, "me@example.org")
    assert httpx.get(f"{base}/v1/alerts", headers=headers).json() == {"email": "me@example.org"}
    assert httpx.get(f"{base}/v1/alerts", headers=native(other)).json() == {"email": None}
    for bad_email in ["nobody", "a@b", "me@example.org\r\nBcc: x@evil.example", 42, "x" * 250 + "@example.org"]:
        r = httpx.put(f"{base}/v1/alerts", headers=headers, json={"email": bad_email})
        assert r.status_code == 422 and "email" in r.json()["errors"], r.text
    alert_to(ops_server, customer, None)


def test_strict_policy_refuses_private_operational_targets(strict_in_process: Any, tenant: Tenant) -> None:
    with strict_in_process.client() as client:
        r = client.post("/v1/operational-webhooks", headers=native(tenant),
                        json={"url": "http://10.0.0.1/ops", "event_types": ["webhook.failing"]})
    assert r.status_code == 422 and "url" in r.json()["errors"], r.text


def test_openapi_declares_the_routes(ops_server: ServerProcess) -> None:
    document = httpx.get(f"{ops_server.base_url}/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/v1/operational-webhooks"]) == {"get", "post"}
    assert set(paths["/v1/operational-webhooks/{guid}"]) == {"delete"}
    assert set(paths["/v1/alerts"]) == {"get", "put"}
    schemas = document["components"]["schemas"]
    assert schemas["OperationalWebhookIn"]["properties"]["event_types"]["items"]["enum"] == KINDS
    assert "Alerts" in schemas


def test_cli_sets_the_alert_address(ops_server: ServerProcess, customer: Tenant, module_db: str,
                                    tmp_path: Path) -> None:
    env = {"MAILHOOKS_DATABASE_URL": module_db, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([MAILHOOKS, "accounts", "alerts", customer.username, "--email", "cli@example.org", "--json"],
                         env=env, capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == {"username": customer.username, "email": "cli@example.org"}
    got = httpx.get(f"{ops_server.base_url}/v1/alerts", headers=native(customer)).json()
    assert got == {"email": "cli@example.org"}
    bad = subprocess.run([MAILHOOKS, "accounts", "alerts", customer.username, "--email", "not-an-address"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    subprocess.run([MAILHOOKS, "accounts", "alerts", customer.username, "--clear"], env=env, check=True,
                   capture_output=True, timeout=60)
    assert httpx.get(f"{ops_server.base_url}/v1/alerts", headers=native(customer)).json() == {"email": None}


def test_dashboard_settings_set_the_alert_address(ops_server: ServerProcess, customer: Tenant) -> None:
    with httpx.Client(base_url=ops_server.base_url) as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
        assert token is not None
        signed_in = client.post("/ui/login", data={"csrf": token.group(1), "api_key": customer.api_key, "next": "/ui"})
        assert signed_in.status_code == 303
        page = client.get("/ui/settings")
        assert page.status_code == 200 and 'id="alerts"' in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        saved = client.post("/ui/settings/alerts", data={"csrf": csrf.group(1), "email": "ui@example.org"})
        assert saved.status_code == 303
        assert 'value="ui@example.org"' in client.get("/ui/settings").text
        refused = client.post("/ui/settings/alerts", data={"csrf": csrf.group(1), "email": "not an address"},
                              follow_redirects=True)
        assert refused.status_code == 200 and "valid email" in refused.text
    assert httpx.get(f"{ops_server.base_url}/v1/alerts", headers=native(customer)).json() == {"email": "ui@example.org"}
