"""Retention on both backends, in-process: a backlog far larger than one batch goes in one pass, live claims
and records go on meanwhile, unfinished rows and events still referred to stay, and on PostgreSQL one
process purges at a time."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select, text

from mailhooks.db import schema as t
from mailhooks.db.migrate import upgrade_async
from mailhooks.db.queue import delivery_queue
from mailhooks.db.store import Store
from mailhooks.worker import retention
from mailhooks.worker.retention import Retention
from tests.test_delivery_store import drain_other_tenants, emit, outcome, setup

AGE = 2 * 86400.0  # seeded rows are this old; the tests purge what is older than a day


async def seed_old(store: Store, webhook_id: int, rows: int, status: str = "succeeded") -> None:
    """``rows`` events ``AGE`` old, each with one delivery in ``status`` and one attempt (straight SQL: fast)."""
    async with store.write() as conn:
        template = (await conn.execute(select(t.events.c.id, t.events.c.account_id, t.events.c.domain_id)
                                       .order_by(t.events.c.id.desc()).limit(1))).one()
        events_above = template.id
        deliveries_above = (await conn.execute(select(func.coalesce(func.max(t.deliveries.c.id), 0)))).scalar()
        past = time.time() - AGE
        await conn.execute(text(
            "INSERT INTO events (event_id, account_id, domain_id, event_type, occurred_at, received_at, payload) "
            "WITH RECURSIVE s(n) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT n + 1 FROM s WHERE n < :rows) "
            "SELECT 'old-' || :tag || '-' || CAST(n AS TEXT), :account, :domain, 'delivered', "
            "CAST(:past AS DOUBLE PRECISION), CAST(:past AS DOUBLE PRECISION) + n * 1e-4, '{}' FROM s"),
            {"rows": rows, "tag": f"{status}{events_above}", "account": template.account_id,
             "domain": template.domain_id, "past": past})
        await conn.execute(text(
            "INSERT INTO deliveries (event_pk, webhook_id, account_id, domain_id, status, attempts, created_at, "
            "updated_at) SELECT id, :hook, account_id, domain_id, :status, 1, received_at, received_at "
            "FROM events WHERE id > :above"), {"hook": webhook_id, "status": status, "above": events_above})
        await conn.execute(text(
            "INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code) "
            "SELECT id, 1, created_at, 1.0, 200 FROM deliveries WHERE id > :above"), {"above": deliveries_above})


async def old_rows(store: Store) -> tuple[int, int, int]:
    """(deliveries, attempts, events) older than a day."""
    cutoff = time.time() - 86400
    d, a, e = t.deliveries, t.attempts, t.events
    async with store.read() as conn:
        deliveries = (await conn.execute(select(func.count()).where(d.c.created_at < cutoff))).scalar()
        attempts = (await conn.execute(select(func.count()).select_from(a.join(d, d.c.id == a.c.delivery_id))
                                       .where(d.c.created_at < cutoff))).scalar()
        events = (await conn.execute(select(func.count()).where(e.c.received_at < cutoff))).scalar()
    return int(deliveries or 0), int(attempts or 0), int(events or 0)


async def test_a_backlog_far_larger_than_a_batch_goes_in_one_pass_while_live_work_goes_on(store: Store) -> None:
    queue = delivery_queue(store)
    await drain_other_tenants(queue)
    account, domain, (hook,) = await setup(store)
    await emit(store, account, domain, 1)  # the template event the seeds copy the account and domain of
    backlog = 25_000  # more than the 20 batches of 1,000 a pass used to be allowed
    await seed_old(store, hook.id, backlog)
    await seed_old(store, hook.id, 30, status="pending")  # old but unfinished: kept, and so are their events
    if store.postgres:  # as autovacuum would have by then: the purge's plans follow the statistics
        async with store.write() as conn:
            await conn.execute(text("ANALYZE deliveries, events, attempts"))
    assert await old_rows(store) == (backlog + 30, backlog + 30, backlog + 30)

    worker = Retention(queue, retention_days=1, postgres=store.postgres)
    passing = asyncio.create_task(worker.purge(time.time() - 86400))
    slowest, rounds = 0.0, 0
    while not passing.done():  # live work: ingest, claim, record, as the dispatcher does, beside the purge
        began = time.monotonic()
        await emit(store, account, domain, 5)
        claimed = [c for c in await queue.claim("live", 100, 60) if c.webhook_id == hook.id]
        await queue.record("live", [outcome(c.id, c.webhook_id) for c in claimed])
        slowest, rounds = max(slowest, time.monotonic() - began), rounds + 1
        assert claimed and all(c.event_id and not c.event_id.startswith("old-") for c in claimed)
        await asyncio.sleep(0.02)
    await passing
    assert worker.purged >= 2 * backlog  # deliveries and their events (attempts are not counted)
    assert await old_rows(store) == (30, 30, 30)
    assert rounds >= 3 and slowest < 5.0, (rounds, slowest)  # a shared, loaded test machine: generous


async def test_a_pass_stops_when_told(store: Store) -> None:
    queue = delivery_queue(store)
    await drain_other_tenants(queue)
    account, domain, (hook,) = await setup(store)
    await emit(store, account, domain, 1)
    before = await old_rows(store)
    await seed_old(store, hook.id, 3_000)
    worker = Retention(queue, retention_days=1, postgres=store.postgres)
    passing = asyncio.create_task(worker.purge(time.time() - 86400))
    await asyncio.sleep(0.05)
    worker.stop()
    await asyncio.wait_for(passing, 5)
    left = (await old_rows(store))[0] - before[0]
    assert 0 < left < 3_000  # it had begun, and it ended early
    worker = Retention(queue, retention_days=1, postgres=store.postgres)
    await worker.purge(time.time() - 86400)  # the next pass finishes the job
    assert (await old_rows(store))[0] == before[0]


def test_the_pace_adapts_to_what_a_batch_costs() -> None:
    pace = retention.SQLITE_PACE
    target = pace.batch_seconds
    assert retention.next_batch(200, target) == 200
    assert retention.next_batch(200, target / 10) == 400  # at most doubled
    assert retention.next_batch(200, target * 10) == 100  # at most halved
    assert retention.next_batch(pace.least, 5.0) == pace.least
    assert retention.next_batch(pace.most, 1e-6) == pace.most
    slow = retention.POSTGRES_PACE
    assert retention.next_batch(2 * slow.least, 5.0, slow) == slow.least  # halved, and no lower
    took = 0.04
    assert took / (took + retention.pause_after(took)) == pytest.approx(retention.DUTY)


@pytest.mark.parametrize("module_db", ["postgresql"], indirect=True)
async def test_one_process_purges_at_a_time_on_postgresql(module_db: str) -> None:
    await upgrade_async(module_db)
    first, second = Store(module_db), Store(module_db)  # two processes' pools
    try:
        one, other = delivery_queue(first), delivery_queue(second)
        async with one.retention_turn() as mine:
            assert mine
            async with other.retention_turn() as theirs:
                assert not theirs
            busy = Retention(other, retention_days=1)
            await asyncio.wait_for(busy.purge(time.time()), 5)  # returns at once, having deleted nothing
            assert busy.purged == 0
        async with other.retention_turn() as theirs:  # given back at the end of the pass
            assert theirs
    finally:
        await first.close()
        await second.close()
