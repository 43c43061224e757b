"""A receiver answering hostile bytes must not stop or corrupt delivery for anyone (issue 9, item 1).

A real ``mailhooks serve`` per backend (a database of its own, short lease, timeout and retry schedule),
tenant A subscribed to a real ``HostileReceiver`` (tests/faults/hostile.py: NUL bytes in the body, bytes
that are not UTF-8, huge and endless bodies, NUL in the reason phrase and in headers, not HTTP at all,
no answer), tenant B to a well-behaved ``Receiver``. Before the fix, on PostgreSQL, the first NUL in a
response excerpt made every batched result write fail: no outcome of any tenant was recorded and
every claimed delivery was sent again each lease period.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mailhooks.config import Settings
from mailhooks.core import accounts
from mailhooks.core.deliveries import UNSTORABLE_NOTE, Outcome
from mailhooks.core.events import Intake
from mailhooks.core.models import NewWebhook
from mailhooks.core.storable import storable_text
from mailhooks.core.targets import TargetPolicy
from mailhooks.db.deliveries import Deliveries
from mailhooks.db.engine import is_unavailable
from mailhooks.db.intake import IntakeStore
from mailhooks.db.migrate import upgrade_async
from mailhooks.db.store import Store
from mailhooks.worker.dispatcher import Dispatcher
from tests.conftest import own_database
from tests.faults.hostile import HostileReceiver, Hostility
from tests.support import Provisioner, Receiver, ServerProcess, Tenant

LEASE = 6  # a jammed writer shows as B's events arriving again every LEASE seconds
TIMEOUT = 2.0
ENV = {
    "MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1",
    "MAILHOOKS_RATE_LIMIT": "100000/minute",
    "MAILHOOKS_RETRY_SCHEDULE": "0.3,0.3",
    "MAILHOOKS_DELIVERY_TIMEOUT": str(TIMEOUT),
    "MAILHOOKS_POLL_INTERVAL": "0.1",
    "MAILHOOKS_LEASE_SECONDS": str(LEASE),
}
FINAL = ("succeeded", "failed", "rejected")
# (behaviour, status) per hostile URL; 200s take the single-statement result write on PostgreSQL, the
# others the transaction that also tracks the webhook's failing streak.
HOSTILE = [
    (Hostility.NUL_BODY, 200), (Hostility.NUL_BODY, 500), (Hostility.INVALID_UTF8, 200),
    (Hostility.HUGE_BODY, 200), (Hostility.ENDLESS_BODY, 200), (Hostility.SILENT_BODY, 200),
    (Hostility.NUL_REASON, 200), (Hostility.CONTROL_HEADER, 200), (Hostility.BINARY_HEADER, 429),
    (Hostility.GARBAGE, 200), (Hostility.NO_ANSWER, 200), (Hostility.NUL_BODY, 406),
]
EVENT_TYPES = ["delivered", "opened", "clicked", "accepted"]  # Mailgun allows 3 URLs per type


def test_storable_text() -> None:
    assert storable_text(None, 10) is None
    assert storable_text("", 10) == ""
    assert storable_text("plain text", 1024) == "plain text"
    assert storable_text("a\x00b\x00", 1024) == "a\ufffdb\ufffd"  # NUL: refused by PostgreSQL
    assert storable_text("h\udcff\udcfeé\x00✓", 1024) == "h\ufffd\ufffdé\ufffd✓"  # lone surrogates: by both drivers
    assert storable_text("tab\tand\x1b[31m", 1024) == "tab\tand\x1b[31m"  # other control characters are text
    assert storable_text("x" * 5000, 1024) == "x" * 1024
    assert storable_text("é" * 2000 + "\x00", 1024) == "é" * 1024
    for value in ("a\x00b", "a\udcffb", "\ud83d\ude00"):  # a surrogate pair in a str is two lone ones
        (storable_text(value, 1024) or "").encode("utf-8")  # encodable: any database takes it
    big = ("\x00é" * 600)[:1024]  # a full excerpt: the pass must stay cheap on the hot path
    started = time.perf_counter()
    for _ in range(1000):
        storable_text(big, 1024)
    assert time.perf_counter() - started < 0.5


async def test_connection_level_errors_are_told_from_data_errors() -> None:
    import sqlite3

    import asyncpg
    from sqlalchemy import exc as sa_exc

    with socket.socket() as sock:  # a port nobody listens on: a real refusal, raised inside the driver
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(OSError) as refusal:
        await asyncpg.connect(host="127.0.0.1", port=closed_port, user="postgres", timeout=5)
    for unreachable in (refusal.value, asyncpg.ConnectionDoesNotExistError("gone"),
                        asyncpg.exceptions.DeadlockDetectedError("deadlock"), sa_exc.TimeoutError("pool"),
                        asyncpg.exceptions.AdminShutdownError("shutdown"), sqlite3.OperationalError("locked"),
                        sa_exc.OperationalError("stmt", {}, sqlite3.OperationalError("disk I/O error"))):
        assert is_unavailable(unreachable), unreachable
    wrapped = asyncpg.exceptions.DataError("invalid input")
    wrapped.__cause__ = UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")
    for refused in (asyncpg.exceptions.CharacterNotInRepertoireError("0x00"), wrapped,
                    asyncpg.exceptions.ForeignKeyViolationError("fk"), sqlite3.IntegrityError("FOREIGN KEY"),
                    sa_exc.DBAPIError("stmt", {}, wrapped), UnicodeEncodeError("utf-8", "x", 0, 1, "no"),
                    ConnectionRefusedError(), sqlite3.OperationalError("no such table: deliveries")):
        assert not is_unavailable(refused), refused


@pytest.fixture(scope="module")
def hostile_server(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(module_db, log_dir=tmp_path_factory.mktemp("hostile-logs"), env=ENV)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileReceiver]:
    rcv = HostileReceiver().start()
    yield rcv
    rcv.stop()


def native(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.api_key}"}


def subscribe(hostile_server: ServerProcess, tenant: Tenant, event: str, urls: list[str]) -> None:
    r = httpx.post(f"{hostile_server.base_url}/v3/domains/{tenant.domain}/webhooks", auth=("api", tenant.api_key),
                   data={"id": event, "url": urls})
    assert r.status_code == 200, r.text


def ingest(hostile_server: ServerProcess, tenant: Tenant, events: list[str]) -> None:
    body = [{"id": f"e{i}-{uuid.uuid4().hex[:8]}", "domain": tenant.domain, "event": event,
             "recipient": f"u{i}@x.example"} for i, event in enumerate(events)]
    r = httpx.post(f"{hostile_server.base_url}/v1/events", json=body, headers=native(tenant))
    assert r.status_code == 202, r.text


def all_deliveries(hostile_server: ServerProcess, tenant: Tenant) -> list[dict[str, Any]]:
    r = httpx.get(f"{hostile_server.base_url}/v1/deliveries", params={"limit": 1000}, headers=native(tenant))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def wait_until_final(hostile_server: ServerProcess, tenant: Tenant, count: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = all_deliveries(hostile_server, tenant)
        if len(rows) == count and all(r["status"] in FINAL for r in rows):
            return rows
        time.sleep(0.2)
    statuses = Counter((r["status"], r["url"].split("/")[3]) for r in rows)
    raise AssertionError(f"{tenant.username}: not all {count} deliveries final after {timeout}s: {statuses}")


def test_hostile_receiver_neither_jams_others_nor_corrupts_its_own_record(
        hostile_server: ServerProcess, module_db: str, hostile: HostileReceiver, receiver: Receiver) -> None:
    provision = Provisioner(module_db)
    tenant_a, tenant_b = provision.tenant(prefix="hostile"), provision.tenant(prefix="calm")
    urls = [hostile.url(mode, status) for mode, status in HOSTILE]
    for i, event in enumerate(EVENT_TYPES):
        subscribe(hostile_server, tenant_a, event, urls[3 * i:3 * i + 3])
    calm = f"/calm-{uuid.uuid4().hex[:8]}"
    subscribe(hostile_server, tenant_b, "delivered", [receiver.url(calm)])

    per_type, b_events = 3, 60
    ingest(hostile_server, tenant_a, EVENT_TYPES * per_type)  # first in the queue: in the same claims and writes as B's
    ingest(hostile_server, tenant_b, ["delivered"] * b_events)

    # B: every event recorded as succeeded, each sent once (a jam re-sends each one every LEASE seconds).
    b_rows = wait_until_final(hostile_server, tenant_b, b_events, timeout=2 * LEASE)
    assert {r["status"] for r in b_rows} == {"succeeded"}

    # A: every delivery ends with a visible, storable outcome (timeouts take three attempts of TIMEOUT).
    a_rows = wait_until_final(hostile_server, tenant_a, len(HOSTILE) * per_type, timeout=3 * TIMEOUT + 3 * LEASE)
    for row in a_rows:
        r = httpx.get(f"{hostile_server.base_url}/v1/deliveries/{row['id']}", headers=native(tenant_a))
        assert r.status_code == 200, r.text
        detail = r.json()
        assert detail["attempts"] and len(detail["attempts"]) == detail["attempt_count"]
        for attempt in detail["attempts"]:
            for text in (attempt["response_excerpt"], attempt["error"], detail["last_error"]):
                assert text is None or ("\x00" not in text and len(text) <= 1024), (row["url"], text)
        mode = Hostility(row["url"].split("/")[3])
        first = detail["attempts"][0]
        if mode is Hostility.NUL_BODY:
            assert first["response_excerpt"].startswith('{"ok":\ufffd"yes"}'), first
        if mode is Hostility.INVALID_UTF8:
            assert "\ufffd" in first["response_excerpt"], first
        if mode in (Hostility.SILENT_BODY, Hostility.NO_ANSWER):
            assert detail["status"] == "failed" and "timeout" in first["error"], detail
    by_url = {url: [r for r in a_rows if r["url"] == url] for url in urls}
    assert {r["status"] for r in by_url[urls[0]]} == {"succeeded"}  # NUL bytes in a 200 are still a 200

    # Nobody was sent anything twice behind its back: each arrival is one recorded attempt.
    time.sleep(1.0)
    got = receiver.on(calm)
    assert len(got) == b_events and len({g.headers["webhook-id"] for g in got}) == b_events
    for url, rows in by_url.items():
        assert len(hostile.arrivals(url)) == sum(r["attempt_count"] for r in rows), url


# ---------------------------------------------------------------------- a row the database refuses


def _outcome(delivery_id: int, webhook_id: int, excerpt: str | None, error: str | None = None,
             ok: bool = True) -> Outcome:
    status, code = ("succeeded", 200) if ok else ("pending", 500)
    return Outcome(delivery_id, webhook_id, status, None if ok else time.time() + 300, 1,
                   {"delivery_id": delivery_id, "number": 1, "started_at": time.time(), "duration_ms": 1.0,
                    "status_code": code, "response_excerpt": excerpt, "error": error, "request_headers": "{}"},
                   code, error, endpoint_failure=not ok, endpoint_success=ok)


async def test_a_row_the_database_refuses_does_not_hold_up_the_batch(empty_db: str) -> None:
    """Outcomes carrying text the database refuses (as if a code path forgot ``storable_text``), and one
    whose delivery row is gone, in one batch with good ones: the good ones are written, the refused ones
    without their text, the orphan is dropped, and nothing is left for the writer to retry forever."""
    await upgrade_async(empty_db)
    store = Store(empty_db)
    try:
        created = await accounts.create_account(store, f"r{uuid.uuid4().hex[:10]}")
        domain = await accounts.add_domain(store, created.account, f"{uuid.uuid4().hex[:8]}.example")
        (hook,) = await store.change_webhooks(add=[
            NewWebhook(created.account.id, domain.id, "delivered", "https://r.example/x", "mailgun")])
        body = [{"domain": domain.name, "event": "delivered", "recipient": f"u{i}@x.example"} for i in range(24)]
        await Intake(store, IntakeStore(store)).ingest(created.account, body)
        dispatcher = Dispatcher(store, Settings(), TargetPolicy())
        claimed = sorted(await dispatcher.queue.claim(dispatcher.owner, 100, 60), key=lambda c: c.id)
        assert len(claimed) == 24
        refused = {claimed[5].id: "a\x00b",  # PostgreSQL refuses NUL in text
                   claimed[17].id: "a\udcffb"}  # neither driver encodes a lone surrogate
        outcomes = []
        for i, job in enumerate(claimed):  # the first 12 all succeeded (PostgreSQL's one-statement write)
            bad = refused.get(job.id)
            outcomes.append(_outcome(job.id, hook.id, bad if i == 5 else f"fine {i}", bad if i == 17 else None,
                                     ok=i < 12 or i % 2 == 0))
        outcomes.insert(15, _outcome(2**40, hook.id, "orphan"))  # no such delivery: its attempt row cannot exist
        for batch in (outcomes[:12], outcomes[12:]):
            dispatcher.writer.outcomes = batch
            await dispatcher.writer.flush()
            assert dispatcher.writer.outcomes == [] and dispatcher.writer.saving == 0

        for i, job in enumerate(claimed):
            found = await Deliveries(store).get_delivery(created.account.id, job.id)
            assert found is not None
            row, attempts = found
            assert row["status"] == ("succeeded" if i < 12 or i % 2 == 0 else "pending"), (i, row)
            (attempt,) = attempts
            if job.id == claimed[17].id or (job.id == claimed[5].id and store.postgres):
                assert attempt["response_excerpt"] is None and attempt["error"] == UNSTORABLE_NOTE, attempt
            elif job.id == claimed[5].id:  # SQLite takes NUL: nothing to isolate
                assert attempt["response_excerpt"] == "a\x00b"
            else:
                assert attempt["response_excerpt"] == f"fine {i}" and attempt["error"] is None
    finally:
        await store.close()


# ---------------------------------------------------------------------- back-pressure


def test_unsaved_results_hold_back_claims_while_writes_stall(tmp_path_factory: pytest.TempPathFactory,
                                                            pg_admin_url: str, receiver: Receiver) -> None:
    """The attempts table locked by another transaction (a long migration, VACUUM FULL, a stuck
    session): result writes wait, and the dispatcher must not keep claiming and sending with nowhere
    to put the results. At most twice MAILHOOKS_WORKER_CONCURRENCY deliveries go out (as many unsaved
    as in flight) until writes resume; then everything is recorded once. PostgreSQL only: on SQLite the
    one write lock stops claims too."""
    import asyncio

    import asyncpg
    from sqlalchemy.engine import make_url

    capacity, events = 20, 120
    for url in own_database("postgresql", tmp_path_factory.mktemp("stall"), pg_admin_url, "stall"):
        env = {**ENV, "MAILHOOKS_WORKER_CONCURRENCY": str(capacity), "MAILHOOKS_WORKER_BATCH": "10",
               "MAILHOOKS_LEASE_SECONDS": "60"}
        proc = ServerProcess(url, log_dir=tmp_path_factory.mktemp("stall-logs"), env=env)
        proc.start()
        loop = asyncio.new_event_loop()
        try:
            tenant = Provisioner(url).tenant(prefix="stall")
            path = f"/stall-{uuid.uuid4().hex[:8]}"
            subscribe(proc, tenant, "delivered", [receiver.url(path)])
            dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
            locker = loop.run_until_complete(asyncpg.connect(dsn))
            loop.run_until_complete(locker.execute("BEGIN; LOCK TABLE attempts IN ACCESS EXCLUSIVE MODE"))
            ingest(proc, tenant, ["delivered"] * events)
            receiver.wait_for(path, 1)
            time.sleep(2.0)  # long enough to send everything, were claims not held back
            assert len(receiver.on(path)) <= 2 * capacity
            loop.run_until_complete(locker.execute("ROLLBACK"))
            loop.run_until_complete(locker.close())
            rows = wait_until_final(proc, tenant, events, timeout=20)
            assert {r["status"] for r in rows} == {"succeeded"}
            assert len(receiver.on(path)) == events  # each sent once
        finally:
            loop.close()
            proc.stop()
