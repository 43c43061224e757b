"""Subscription settings end to end: a real ``mailhooks serve`` (SQLite and PostgreSQL, fresh database per
backend), subscriptions made through the dialects, settings changed through ``PATCH /v1/subscriptions``,
events through ``POST /v1/events`` and a real receiver on 127.0.0.1.

The installation's own schedule (30 s) and timeout (20 s) are far from the subscriptions' own, so each
test shows the subscription's setting was the one followed.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook as StandardWebhook

from tests.support import Provisioner, Receiver, ServerProcess, Tenant

ENV = {
    "MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1",
    "MAILHOOKS_RATE_LIMIT": "100000/minute",
    "MAILHOOKS_AUTH_FAILURE_LIMIT": "100000/minute",
    "MAILHOOKS_RETRY_SCHEDULE": "30,30",
    "MAILHOOKS_DELIVERY_TIMEOUT": "20",
    "MAILHOOKS_POLL_INTERVAL": "0.1",
    "MAILHOOKS_LEASE_SECONDS": "60",
}
MASK = "********"


@pytest.fixture(scope="module")
def srv(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(module_db, log_dir=tmp_path_factory.mktemp("settings-logs"), env=ENV)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture()
def customer(module_db: str, srv: ServerProcess) -> Tenant:
    return Provisioner(module_db).tenant()


def auth(t: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {t.api_key}"}


def subscribe(srv: ServerProcess, t: Tenant, event: str, url: str) -> str:
    r = httpx.post(f"{srv.base_url}/api/domains/{t.domain}/webhooks", auth=(t.username, t.api_key),
                   json={"type": event, "url": url})
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["webhook_guid"])


def patch(srv: ServerProcess, t: Tenant, guid: str, body: Any, status: int = 200) -> dict[str, Any]:
    r = httpx.patch(f"{srv.base_url}/v1/subscriptions/{guid}", json=body, headers=auth(t))
    assert r.status_code == status, r.text
    return dict(r.json())


def emit(srv: ServerProcess, t: Tenant, event: str = "delivered", **fields: Any) -> str:
    body = {"domain": t.domain, "event": event, "recipient": "alice@example.com", **fields}
    r = httpx.post(f"{srv.base_url}/v1/events", json=body, headers=auth(t))
    assert r.status_code == 202, r.text
    return str(r.json()["ids"][0])


def deliveries_of(srv: ServerProcess, t: Tenant, event_id: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{srv.base_url}/v1/deliveries", params={"event_id": event_id}, headers=auth(t))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def wait_detail(srv: ServerProcess, t: Tenant, event_id: str, done: Any, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    detail: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = deliveries_of(srv, t, event_id)
        if found:
            detail = httpx.get(f"{srv.base_url}/v1/deliveries/{found[0]['id']}", headers=auth(t)).json()
            if done(detail):
                return detail
        time.sleep(0.1)
    raise AssertionError(f"delivery of {event_id} not done in time: {detail}")


def path() -> str:
    return f"/{uuid.uuid4().hex[:12]}"


def sign_in(srv: ServerProcess, key: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=srv.base_url)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
    assert token is not None
    r = client.post("/ui/login", data={"csrf": token.group(1), "api_key": key, "next": "/ui"})
    assert r.status_code == 303, r.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/settings").text)
    assert csrf is not None
    return client, csrf.group(1)


# ---------------------------------------------------------------------- headers and masking


def test_static_headers_reach_the_receiver_and_read_back_masked(srv: ServerProcess, customer: Tenant,
                                                                receiver: Receiver) -> None:
    where = path()
    guid = subscribe(srv, customer, "delivered", receiver.url(where))
    shown = patch(srv, customer, guid, {"headers": {"Authorization": "Bearer s3cret-token", "X-Team": "ops",
                                                    "X-Api-Key": "k-123"}})
    assert shown["headers"] == {"Authorization": f"Bearer {MASK}", "X-Team": "ops", "X-Api-Key": MASK}
    got = httpx.get(f"{srv.base_url}/v1/subscriptions/{guid}", headers=auth(customer)).json()
    assert got["headers"] == shown["headers"] and "s3cret" not in str(got)

    emit(srv, customer)
    (first,) = receiver.wait_for(where, 1)
    assert first.headers["Authorization"] == "Bearer s3cret-token"
    assert first.headers["X-Team"] == "ops" and first.headers["X-Api-Key"] == "k-123"
    whsec = httpx.get(f"{srv.base_url}/v1/signing-key", headers=auth(customer)).json()["whsec"]
    StandardWebhook(whsec).verify(first.body, first.headers)  # ours are intact beside the static ones
    assert first.headers["Content-Type"] == "application/json"

    # Read-modify-write with the masks: the secrets stay, the plain value changes.
    patch(srv, customer, guid, {"headers": {**shown["headers"], "X-Team": "billing"}})
    event_id = emit(srv, customer)
    second = receiver.wait_for(where, 2)[1]
    assert second.headers["Authorization"] == "Bearer s3cret-token" and second.headers["X-Api-Key"] == "k-123"
    assert second.headers["X-Team"] == "billing"

    # The attempt's recorded request headers (the dashboard's delivery page) are masked the same way.
    detail = wait_detail(srv, customer, event_id, lambda d: d["status"] == "succeeded")
    client, _ = sign_in(srv, customer.api_key)
    page = client.get(f"/ui/deliveries/{detail['id']}")
    assert page.status_code == 200
    assert "s3cret" not in page.text and "k-123" not in page.text
    assert f"Bearer {MASK}" in page.text and "billing" in page.text

    # The dashboard's settings page shows them masked; saving it unchanged keeps the secrets.
    form = client.get(f"/ui/subscriptions/{guid}")
    assert form.status_code == 200 and "s3cret" not in form.text and f"Authorization: Bearer {MASK}" in form.text
    textarea = re.search(r'<textarea name="headers"[^>]*>([^<]*)</textarea>', form.text)
    assert textarea is not None
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    saved = client.post(f"/ui/subscriptions/{guid}", data={
        "csrf": csrf.group(1), "headers": textarea.group(1).replace("&#34;", '"'), "tags": "", "recipient_domains": "",
        "user_variables": "", "timeout_seconds": "7", "retry_schedule": "5, 10", "rate_limit_per_second": "3",
        "ordering": "fifo"})
    assert saved.status_code == 303, saved.text
    after = httpx.get(f"{srv.base_url}/v1/subscriptions/{guid}", headers=auth(customer)).json()
    assert after["timeout_seconds"] == 7 and after["retry_schedule"] == [5, 10]
    assert after["rate_limit_per_second"] == 3 and after["ordering"] == "fifo"
    assert after["headers"] == {"Authorization": f"Bearer {MASK}", "X-Team": "billing", "X-Api-Key": MASK}
    emit(srv, customer)
    third = receiver.wait_for(where, 3)[2]
    assert third.headers["Authorization"] == "Bearer s3cret-token"
    bad = client.post(f"/ui/subscriptions/{guid}", data={"csrf": csrf.group(1), "headers": "Host: evil"})
    assert bad.status_code == 303
    assert "Host" in client.get(bad.headers["location"]).text  # the reason, as a flash message
    client.close()


def test_url_password_reads_back_masked(srv: ServerProcess, customer: Tenant, receiver: Receiver) -> None:
    url = receiver.url(path()).replace("http://", "http://hook:pa55word@")
    guid = subscribe(srv, customer, "opened", url)
    got = httpx.get(f"{srv.base_url}/v1/subscriptions/{guid}", headers=auth(customer)).json()
    assert got["url"] == url.replace("pa55word", MASK)
    event_id = emit(srv, customer, "opened")
    detail = wait_detail(srv, customer, event_id, lambda d: d["status"] == "succeeded")
    assert detail["url"] == url.replace("pa55word", MASK)  # the deliveries' reads mask it too
    client, _ = sign_in(srv, customer.api_key)
    for page in (f"/ui/subscriptions/{guid}", f"/ui/domains/{customer.domain}"):
        text = client.get(page).text
        assert "pa55word" not in text and f"hook:{MASK}@" in text, page
    client.close()


# ---------------------------------------------------------------------- filters at intake


def test_filters_drop_and_pass_events(srv: ServerProcess, customer: Tenant, receiver: Receiver) -> None:
    filtered, plain = path(), path()
    guid = subscribe(srv, customer, "clicked", receiver.url(filtered))
    subscribe(srv, customer, "clicked", receiver.url(plain))
    patch(srv, customer, guid, {"filters": {"tags": ["vip", "beta"], "recipient_domains": ["example.com"],
                                            "user_variables": {"plan": "gold"}}})
    passes = emit(srv, customer, "clicked", tags=["beta"], **{"user-variables": {"plan": "gold", "x": "1"}})
    wrong_tag = emit(srv, customer, "clicked", tags=["news"], **{"user-variables": {"plan": "gold"}})
    wrong_domain = emit(srv, customer, "clicked", recipient="bob@example.org", tags=["vip"],
                        **{"user-variables": {"plan": "gold"}})
    wrong_variable = emit(srv, customer, "clicked", tags=["vip"], **{"user-variables": {"plan": "free"}})
    no_variables = emit(srv, customer, "clicked", tags=["vip"])

    receiver.wait_for(plain, 5)
    (arrived,) = receiver.wait_for(filtered, 1)
    assert passes.encode() in arrived.body
    time.sleep(0.5)
    assert len(receiver.on(filtered)) == 1
    assert {d["webhook"] for d in deliveries_of(srv, customer, passes)} >= {guid}
    for dropped in (wrong_tag, wrong_domain, wrong_variable, no_variables):
        rows = deliveries_of(srv, customer, dropped)
        assert len(rows) == 1 and guid not in {d["webhook"] for d in rows}, rows  # no row at all, not failed

    patch(srv, customer, guid, {"filters": None})  # reset: everything passes again
    again = emit(srv, customer, "clicked")
    assert len(deliveries_of(srv, customer, again)) == 2


# ---------------------------------------------------------------------- retry schedule and timeout


def test_a_subscription_retry_schedule_is_followed(srv: ServerProcess, customer: Tenant, receiver: Receiver) -> None:
    where = path()
    receiver.script(where, [500])
    guid = subscribe(srv, customer, "bounced", receiver.url(where))
    assert patch(srv, customer, guid, {"retry_schedule": [1, 1]})["retry_schedule"] == [1, 1]
    event_id = emit(srv, customer, "bounced")
    detail = wait_detail(srv, customer, event_id, lambda d: d["status"] == "failed", timeout=20)
    assert detail["attempt_count"] == 3  # the first, then one per entry of the schedule
    times = [r.at for r in receiver.on(where)]
    assert len(times) == 3
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(0.75 <= gap <= 4.0 for gap in gaps), gaps  # 1 s ±20 %, not the installation's 30 s


def test_a_subscription_timeout_cuts_a_slow_receiver(srv: ServerProcess, customer: Tenant,
                                                     receiver: Receiver) -> None:
    where = path()
    receiver.hang(where)
    guid = subscribe(srv, customer, "unsubscribed", receiver.url(where))
    patch(srv, customer, guid, {"timeout_seconds": 1})
    event_id = emit(srv, customer, "unsubscribed")
    detail = wait_detail(srv, customer, event_id, lambda d: d["attempts"], timeout=15)
    (attempt,) = detail["attempts"]
    assert attempt["status_code"] is None and attempt["error"] == "timeout after 1s", attempt
    assert 900 <= attempt["duration_ms"] < 5000, attempt  # the installation's 20 s would still be waiting
    assert detail["status"] == "pending"  # retried on the installation's schedule


# ---------------------------------------------------------------------- the API: listing, 422s, tenancy


def test_listing_covers_every_dialect_and_pages(srv: ServerProcess, customer: Tenant) -> None:
    kirim_guid = subscribe(srv, customer, "delivered", "http://127.0.0.1:9/kirim")
    r = httpx.post(f"{srv.base_url}/v1/webhooks", auth=("api", customer.api_key),
                   data={"url": "http://127.0.0.1:9/account", "event_types": ["opened", "clicked"]})
    assert r.status_code == 200, r.text
    r = httpx.post(f"{srv.base_url}/v3/domains/{customer.domain}/webhooks", auth=("api", customer.api_key),
                   data={"id": "opened", "url": "http://127.0.0.1:9/mg"})
    assert r.status_code == 200, r.text
    listed = httpx.get(f"{srv.base_url}/v1/subscriptions", headers=auth(customer)).json()
    rows = {(i["domain"], i["event_type"], i["url"].rsplit("/", 1)[1]) for i in listed["items"]}
    assert rows == {(customer.domain, "delivered", "kirim"), (None, "opened", "account"),
                    (None, "clicked", "account"), (customer.domain, "opened", "mg")}
    assert listed["next_cursor"] is None
    item = next(i for i in listed["items"] if i["guid"] == kirim_guid)
    assert item == {**item, "state": "enabled", "disabled_reason": None, "payload_format": "kirim", "headers": {},
                    "filters": {"tags": [], "recipient_domains": [], "user_variables": {}, "suppressed": None},
                    "rate_limit_per_second": None, "timeout_seconds": None, "retry_schedule": None,
                    "ordering": "none"}
    opened = httpx.get(f"{srv.base_url}/v1/subscriptions", params={"event_type": "opened", "domain": customer.domain},
                       headers=auth(customer)).json()["items"]
    assert {i["domain"] for i in opened} == {None, customer.domain}
    seen: list[str] = []
    cursor: str | None = ""
    while cursor is not None:
        page = httpx.get(f"{srv.base_url}/v1/subscriptions", params={"limit": 1, "cursor": cursor},
                         headers=auth(customer)).json()
        seen += [i["guid"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(i["guid"] for i in listed["items"])


def test_bad_settings_are_422(srv: ServerProcess, customer: Tenant) -> None:
    guid = subscribe(srv, customer, "delivered", "http://127.0.0.1:9/x")
    for body, field in (({"headers": {"Host": "evil.example"}}, "headers.Host"),
                        ({"headers": {"X-A": "a\r\nInjected: 1"}}, "headers.X-A"),
                        ({"headers": {"webhook-signature": "v1,forged"}}, "headers.webhook-signature"),
                        ({"timeout_seconds": 31}, "timeout_seconds"), ({"retry_schedule": [0]}, "retry_schedule"),
                        ({"rate_limit_per_second": 0}, "rate_limit_per_second"), ({"ordering": "lifo"}, "ordering"),
                        ({"filters": {"tags": "vip"}}, "filters.tags"), ({"nope": 1}, "body"), ([1], "body")):
        answer = patch(srv, customer, guid, body, status=422)
        assert field in answer["errors"] and answer["message"], (body, answer)
    r = httpx.patch(f"{srv.base_url}/v1/subscriptions/{guid}", content=b"{", headers=auth(customer))
    assert r.status_code == 422
    unchanged = httpx.get(f"{srv.base_url}/v1/subscriptions/{guid}", headers=auth(customer)).json()
    assert unchanged["headers"] == {} and unchanged["timeout_seconds"] is None


def test_another_accounts_subscription_is_404_like_an_unknown_one(srv: ServerProcess, customer: Tenant,
                                                                  module_db: str) -> None:
    guid = subscribe(srv, customer, "delivered", "http://127.0.0.1:9/mine")
    patch(srv, customer, guid, {"headers": {"X-Api-Key": "mine"}})
    other = Provisioner(module_db).tenant()
    unknown = str(uuid.uuid4())

    def same(method: str, url: str, **kwargs: Any) -> None:
        foreign = httpx.request(method, f"{srv.base_url}{url.format(guid)}", headers=auth(other), **kwargs)
        missing = httpx.request(method, f"{srv.base_url}{url.format(unknown)}", headers=auth(other), **kwargs)
        assert foreign.status_code == 404, foreign.text
        assert (foreign.content, foreign.headers.get("content-type")) == (missing.content,
                                                                         missing.headers.get("content-type"))

    same("GET", "/v1/subscriptions/{}")
    same("PATCH", "/v1/subscriptions/{}", json={"timeout_seconds": 5})
    same("PATCH", "/v1/subscriptions/{}", json={"timeout_seconds": 500})  # no 422 that would reveal it
    assert httpx.get(f"{srv.base_url}/v1/subscriptions", headers=auth(other)).json()["items"] == []
    r = httpx.get(f"{srv.base_url}/v1/subscriptions", params={"domain": customer.domain}, headers=auth(other))
    assert r.status_code == 404
    client, _ = sign_in(srv, other.api_key)
    assert client.get(f"/ui/subscriptions/{guid}").status_code == 404
    client.close()
    mine = httpx.get(f"{srv.base_url}/v1/subscriptions/{guid}", headers=auth(customer)).json()
    assert mine["timeout_seconds"] is None and mine["headers"] == {"X-Api-Key": MASK}
