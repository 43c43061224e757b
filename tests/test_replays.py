"""Replays and back-fills of a time range, end to end: a real ``mailhooks serve`` (its replay runner beside the
dispatcher, a fresh database per backend), events through ``POST /v1/events``, a real receiver on 127.0.0.1,
and ``POST /v1/replays`` / ``GET /v1/replays/{id}``.

The range is the time the events were received: the test takes the time between emits, so that a range
holds exactly the events it emitted in it.
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
from sqlalchemy import select

from mailhooks.core.replays import ReplayRequest, ReplayScope, ReplayState
from mailhooks.db import schema as t
from mailhooks.db.database import Database
from mailhooks.db.migrate import upgrade
from mailhooks.db.replays import LostLease, ReplayStore
from tests.support import Provisioner, Receiver, ServerProcess, Tenant
from tests.test_ui import sign_in_http

FAST_ENV = {
    "MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1",
    "MAILHOOKS_RATE_LIMIT": "100000/minute",
    "MAILHOOKS_RETRY_SCHEDULE": "0.1",  # two attempts, then failed
    "MAILHOOKS_DELIVERY_TIMEOUT": "3",
    "MAILHOOKS_POLL_INTERVAL": "0.1",
    "MAILHOOKS_LEASE_SECONDS": "10",
}
GAP = 0.3  # seconds between the emits on either side of a range bound


@pytest.fixture(scope="module")
def fast_server(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(module_db, log_dir=tmp_path_factory.mktemp("replay-logs"), env=FAST_ENV)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture()
def customer(module_db: str, fast_server: ServerProcess) -> Tenant:
    return Provisioner(module_db).tenant()


def native(customer: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {customer.api_key}"}


def subscribe(server: ServerProcess, customer: Tenant, event: str, url: str) -> str:
    r = httpx.post(f"{server.base_url}/api/domains/{customer.domain}/webhooks",
                   auth=(customer.username, customer.api_key), json={"type": event, "url": url})
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["webhook_guid"])


def emit(server: ServerProcess, customer: Tenant, event: str = "bounced") -> str:
    body = {"domain": customer.domain, "event": event, "recipient": "alice@example.com"}
    r = httpx.post(f"{server.base_url}/v1/events", json=body, headers=native(customer))
    assert r.status_code == 202, r.text
    return str(r.json()["ids"][0])


def statuses(server: ServerProcess, customer: Tenant) -> list[str]:
    r = httpx.get(f"{server.base_url}/v1/deliveries", headers=native(customer))
    assert r.status_code == 200, r.text
    return [d["status"] for d in r.json()["items"]]


def settle(server: ServerProcess, customer: Tenant, count: int, timeout: float = 20.0) -> None:
    """Wait until the customer's ``count`` deliveries are all finished (succeeded or failed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = statuses(server, customer)
        if len(got) == count and all(s in ("succeeded", "failed") for s in got):
            return
        time.sleep(0.1)
    raise AssertionError(f"deliveries not settled: {statuses(server, customer)}")


def replay(server: ServerProcess, customer: Tenant, **body: Any) -> str:
    r = httpx.post(f"{server.base_url}/v1/replays", json={"domain": customer.domain, **body}, headers=native(customer))
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def wait_done(server: ServerProcess, customer: Tenant, replay_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = httpx.get(f"{server.base_url}/v1/replays/{replay_id}", headers=native(customer))
        assert r.status_code == 200, r.text
        last = r.json()
        if last["state"] in ("done", "failed"):
            return last
        time.sleep(0.1)
    raise AssertionError(f"replay not done: {last}")


def by_event(receiver: Receiver, path: str) -> dict[str, list[str]]:
    """The ``webhook-id`` of every request ``path`` received, per event id (Kirim's ``message_guid``)."""
    out: dict[str, list[str]] = {}
    for got in receiver.on(path):
        headers = {k.lower(): v for k, v in got.headers.items()}
        out.setdefault(json.loads(got.body)["message_guid"], []).append(headers["webhook-id"])
    return out


def quiet(seconds: float = 1.0) -> None:
    """Give a wrong extra send the time to show up before counting."""
    time.sleep(seconds)


# ---------------------------------------------------------------------- replays
def test_a_range_is_replayed_once_per_delivery_with_its_webhook_id(
        fast_server: ServerProcess, customer: Tenant, receiver: Receiver) -> None:
    failing, fine = f"/{uuid.uuid4().hex[:10]}", f"/{uuid.uuid4().hex[:10]}"
    receiver.script(failing, [500])
    subscribe(fast_server, customer, "bounced", receiver.url(failing))
    fine_guid = subscribe(fast_server, customer, "bounced", receiver.url(fine))
    before = emit(fast_server, customer)
    time.sleep(GAP)
    since = time.time()
    inside = [emit(fast_server, customer), emit(fast_server, customer)]
    until = time.time()
    time.sleep(GAP)
    after = emit(fast_server, customer)
    settle(fast_server, customer, 8)
    first_failing, first_fine = by_event(receiver, failing), by_event(receiver, fine)
    assert all(len(first_failing[e]) == 2 for e in [before, *inside, after])  # two attempts each, then failed
    receiver.script(failing, [200])

    # status "failed": only the failed deliveries of the range, each once, with the id the receiver saw.
    done = wait_done(fast_server, customer, replay(fast_server, customer, since=since, until=until, status="failed"))
    assert (done["state"], done["matched"], done["queued"], done["skipped"]) == ("done", 2, 2, 0)
    assert done["progress"] == 1.0 and done["finished_at"] >= done["started_at"] >= done["created_at"]
    receiver.wait_for(failing, 10)
    quiet()
    now_failing = by_event(receiver, failing)
    for event in inside:
        assert now_failing[event] == first_failing[event] + [first_failing[event][0]], event
    for event in (before, after):
        assert now_failing[event] == first_failing[event], event
    assert by_event(receiver, fine) == first_fine  # succeeded: not a "failed" replay's business

    # status "all", narrowed to one subscription: its succeeded deliveries of the range, once each.
    done = wait_done(fast_server, customer, replay(fast_server, customer, since=since, until=until, status="all",
                                                   webhook=fine_guid))
    assert (done["state"], done["matched"], done["queued"], done["webhook"]) == ("done", 2, 2, fine_guid)
    receiver.wait_for(fine, 6)
    quiet()
    now_fine = by_event(receiver, fine)
    for event in inside:
        assert now_fine[event] == first_fine[event] * 2, event
    for event in (before, after):
        assert now_fine[event] == first_fine[event], event
    assert by_event(receiver, failing) == now_failing  # the other subscription was not in it


def test_without_until_the_range_runs_to_the_request(
        fast_server: ServerProcess, customer: Tenant, receiver: Receiver) -> None:
    path = f"/{uuid.uuid4().hex[:10]}"
    subscribe(fast_server, customer, "bounced", receiver.url(path))
    old = emit(fast_server, customer)
    time.sleep(GAP)
    since = time.time()
    recent = emit(fast_server, customer)
    settle(fast_server, customer, 2)
    done = wait_done(fast_server, customer, replay(fast_server, customer, since=since, status="all"))
    assert (done["matched"], done["queued"], done["until"]) == (1, 1, None)
    receiver.wait_for(path, 3)
    quiet()
    sent = by_event(receiver, path)
    assert len(sent[recent]) == 2 and len(sent[old]) == 1


# ---------------------------------------------------------------------- back-fills
def test_a_backfill_reaches_a_new_subscription_once(
        fast_server: ServerProcess, customer: Tenant, receiver: Receiver) -> None:
    first = f"/{uuid.uuid4().hex[:10]}"
    subscribe(fast_server, customer, "bounced", receiver.url(first))
    since = time.time()
    bounced = [emit(fast_server, customer), emit(fast_server, customer)]
    emit(fast_server, customer, "delivered")  # another type: the new subscription does not take it
    settle(fast_server, customer, 2)
    late = f"/{uuid.uuid4().hex[:10]}"
    late_guid = subscribe(fast_server, customer, "bounced", receiver.url(late))

    done = wait_done(fast_server, customer, replay(fast_server, customer, since=since, status="all",
                                                   to_webhook=late_guid))
    assert (done["state"], done["matched"], done["queued"], done["to_webhook"]) == ("done", 2, 2, late_guid)
    receiver.wait_for(late, 2)
    quiet()
    sent = by_event(receiver, late)
    assert sorted(sent) == sorted(bounced) and all(len(ids) == 1 for ids in sent.values())
    # new deliveries: ids of their own, not the first subscription's
    assert not set(sum(sent.values(), [])) & set(sum(by_event(receiver, first).values(), []))

    again = wait_done(fast_server, customer, replay(fast_server, customer, since=since, status="all",
                                                    to_webhook=late_guid))
    assert (again["state"], again["matched"], again["queued"], again["skipped"]) == ("done", 2, 0, 2)
    quiet()
    assert by_event(receiver, late) == sent
    assert len(statuses(fast_server, customer)) == 4


def test_a_backfill_follows_the_new_subscriptions_filters(
        fast_server: ServerProcess, customer: Tenant, receiver: Receiver) -> None:
    since = time.time()
    tagged = []
    for tags in (["vip"], ["other"]):
        r = httpx.post(f"{fast_server.base_url}/v1/events", headers=native(customer),
                       json={"domain": customer.domain, "event": "bounced", "recipient": "alice@example.com",
                             "tags": tags})
        assert r.status_code == 202, r.text
        tagged.append(str(r.json()["ids"][0]))
    late = f"/{uuid.uuid4().hex[:10]}"
    late_guid = subscribe(fast_server, customer, "bounced", receiver.url(late))
    r = httpx.patch(f"{fast_server.base_url}/v1/subscriptions/{late_guid}", headers=native(customer),
                    json={"filters": {"tags": ["vip"]}})
    assert r.status_code == 200, r.text

    done = wait_done(fast_server, customer, replay(fast_server, customer, since=since, status="all",
                                                   to_webhook=late_guid))
    assert (done["state"], done["matched"], done["queued"]) == ("done", 2, 1)
    receiver.wait_for(late, 1)
    quiet()
    assert sorted(by_event(receiver, late)) == [tagged[0]]


# ---------------------------------------------------------------------- tenancy and input
def test_another_accounts_replays_and_things_are_not_found(
        fast_server: ServerProcess, module_db: str, customer: Tenant, receiver: Receiver) -> None:
    guid = subscribe(fast_server, customer, "bounced", receiver.url(f"/{uuid.uuid4().hex[:10]}"))
    mine = replay(fast_server, customer, since=0, status="failed")
    other = Provisioner(module_db).tenant(prefix="o")
    base = fast_server.base_url

    def get(path: str) -> httpx.Response:
        return httpx.get(f"{base}{path}", headers=native(other))

    def post(body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{base}/v1/replays", json=body, headers=native(other))

    def same(foreign: httpx.Response, missing: httpx.Response) -> None:
        assert foreign.status_code == 404, foreign.text
        assert (foreign.content, foreign.headers.get("content-type")) == (missing.content,
                                                                          missing.headers.get("content-type"))

    same(get(f"/v1/replays/{mine}"), get(f"/v1/replays/{uuid.uuid4()}"))
    ghost = f"d0-{uuid.uuid4().hex[:10]}.example"
    same(post({"domain": customer.domain, "since": 0, "status": "all"}),
         post({"domain": ghost, "since": 0, "status": "all"}))
    same(post({"domain": other.domain, "since": 0, "status": "all", "to_webhook": guid}),
         post({"domain": other.domain, "since": 0, "status": "all", "to_webhook": str(uuid.uuid4())}))
    same(post({"domain": other.domain, "since": 0, "status": "all", "webhook": guid}),
         post({"domain": other.domain, "since": 0, "status": "all", "webhook": str(uuid.uuid4())}))
    # The other account's own replay of everything matches none of the customer's deliveries.
    emit(fast_server, customer)
    settle(fast_server, customer, 1)
    done = wait_done(fast_server, other, replay(fast_server, other, since=0, status="all"))
    assert (done["matched"], done["queued"]) == (0, 0)


@pytest.mark.parametrize(("body", "field"), [
    ({"status": "all"}, "since"),
    ({"since": 0, "status": "some"}, "status"),
    ({"since": 0}, "status"),
    ({"since": "yesterday", "status": "all"}, "since"),
    ({"since": 10, "until": 5, "status": "all"}, "until"),
    ({"since": 0, "status": "failed", "to_webhook": "x"}, "status"),
    ({"since": 0, "status": "all", "to_webhook": "x", "webhook": "y"}, "webhook"),
    ({"since": 0, "status": "all", "speed": "fast"}, "speed"),
    ({"since": float("1e300"), "status": "all"}, "since"),
])
def test_bad_input_is_a_422_in_the_native_shape(fast_server: ServerProcess, customer: Tenant,
                                                 body: dict[str, Any], field: str) -> None:
    r = httpx.post(f"{fast_server.base_url}/v1/replays", json={"domain": customer.domain, **body},
                   headers=native(customer))
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["message"], str) and field in r.json()["errors"]


def test_a_body_that_is_not_an_object_is_a_422(fast_server: ServerProcess, customer: Tenant) -> None:
    for raw in (b"not json", b"[1, 2]"):
        r = httpx.post(f"{fast_server.base_url}/v1/replays", content=raw, headers=native(customer))
        assert r.status_code == 422 and "body" in r.json()["errors"], r.text


def test_openapi_declares_the_routes(fast_server: ServerProcess) -> None:
    doc = httpx.get(f"{fast_server.base_url}/openapi.json").json()
    assert "post" in doc["paths"]["/v1/replays"] and "get" in doc["paths"]["/v1/replays/{guid}"]
    assert {"ReplayIn", "Replay", "ReplayStarted"} <= set(doc["components"]["schemas"])


# ---------------------------------------------------------------------- the claim and the cursor
def test_one_worker_holds_a_replay_and_the_next_resumes_at_its_cursor(empty_db: str) -> None:
    """On the store, in a database no server runs on: worker a claims and starts a replay, b cannot take it
    while a's lease holds, takes it at the cursor a left once the lease runs out, and a's late batch is
    refused (its transaction rolled back)."""
    upgrade(empty_db)
    tenant = Provisioner(empty_db).tenant(prefix="c")

    async def work() -> None:
        db = Database(empty_db)
        try:
            store = ReplayStore(db)
            async with db.read() as conn:
                account_id, domain_id = (await conn.execute(select(t.domains.c.account_id, t.domains.c.id)
                                                            .where(t.domains.c.name == tenant.domain))).one()
            request = ReplayRequest(tenant.domain, 0.0, None, ReplayScope.ALL, None, None)
            guid = await store.create(account_id, domain_id, request, None, None)
            job = await store.claim("worker-a", 0.5)
            assert job is not None and job.cursor is None
            assert await store.claim("worker-b", 30) is None
            job = await store.begin(job, "worker-a", 0.5)
            assert job.cursor is not None
            await asyncio.sleep(0.7)
            taken = await store.claim("worker-b", 30)
            assert taken is not None and (taken.id, taken.cursor, taken.end_id) == (job.id, job.cursor, job.end_id)
            with pytest.raises(LostLease):
                await store.step(job, "worker-a", 10, time.time(), 30)
            assert (await store.get(account_id, guid) or {})["state"] == "running"
            await store.finish(taken, "worker-b", ReplayState.DONE)
            assert (await store.get(account_id, guid) or {})["state"] == "done"
            assert await store.claim("worker-c", 30) is None
        finally:
            await db.close()

    asyncio.run(work())


# ---------------------------------------------------------------------- the dashboard
def test_the_dashboard_starts_a_backfill_and_shows_its_progress(
        fast_server: ServerProcess, customer: Tenant, receiver: Receiver) -> None:
    since = time.time() - 1
    emit(fast_server, customer)
    late = f"/{uuid.uuid4().hex[:10]}"
    late_guid = subscribe(fast_server, customer, "bounced", receiver.url(late))
    client, csrf = sign_in_http(fast_server, customer.api_key)
    try:
        page = client.get("/ui/replays")
        assert page.status_code == 200 and 'id="start-replay"' in page.text and 'id="no-replays"' in page.text
        started = client.post("/ui/replays", data={
            "csrf": csrf, "domain": customer.domain, "status": "all", "since": str(since), "until": "",
            "webhook": "", "to_webhook": late_guid})
        assert started.status_code == 303 and started.headers["location"] == "/ui/replays", started.text
        receiver.wait_for(late, 1)
        deadline = time.monotonic() + 20
        while 'data-state="done"' not in (page := client.get("/ui/replays")).text:
            assert time.monotonic() < deadline, page.text
            time.sleep(0.2)
        assert "back-fill into" in page.text and "100 %" in page.text
        refused = client.post("/ui/replays", data={"csrf": csrf, "domain": customer.domain, "status": "failed",
                                                  "since": str(since), "to_webhook": late_guid})
        assert refused.status_code == 303  # back to the form, the reason as a flash message
        assert "status must be" in client.get("/ui/replays").text
        bad_time = client.post("/ui/replays", data={"csrf": csrf, "domain": customer.domain, "status": "all",
                                                   "since": "10000-01-01T00:00"})
        assert bad_time.status_code in (303, 400)
        foreign = client.post("/ui/replays", data={"csrf": csrf, "domain": customer.domain, "status": "all",
                                                  "since": "0", "to_webhook": str(uuid.uuid4())})
        assert foreign.status_code == 404
    finally:
        client.close()
