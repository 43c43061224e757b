"""The ``retention`` scenario: does purging a million finished deliveries hurt live ones?

A stack (PostgreSQL ``mailhooks api`` + one ``mailhooks worker`` by default, or SQLite ``serve``) with one
subscription on the benchmark receiver. ``--retention-rows`` (default 1,000,000) finished deliveries are
seeded straight into the database two days in the past, each with its event and one attempt. Then, twice,
single live events at a fixed rate for a fixed time, their latency measured from the moment each is sent to
its arrival at the receiver (as in ``bench/replay.py``):

1. the delivering process started with the default retention (30 days): nothing to purge;
2. the delivering process restarted with ``MAILHOOKS_RETENTION_DAYS=1``: it purges the million meanwhile.

Printed: both p50/p99, p99 during the purge / p99 without it (target <= 2), the purge's rate in the window,
and whether it finished (it is given up to ``FINISH_WAIT`` seconds more after the window).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import aiohttp
from harness import Receiver, Stack, event, stop
from replay import _live as live_latency

SEED_CHUNK = 50_000  # rows per seeding transaction
AGE = 2 * 86400.0  # the seeded rows' age: past a 1-day retention, well inside the default 30 days
PURGE_START_WAIT = 60.0  # seconds for the restarted process's first batch
FINISH_WAIT = 240.0  # seconds after the live window for the purge to finish


async def _seed(stack: Stack, rows: int) -> None:
    """``rows`` events ``AGE`` old, each with one succeeded delivery and its attempt."""
    from sqlalchemy import func, select, text

    from mailhooks.db import schema as t
    from mailhooks.db.store import Store

    async with aiohttp.ClientSession(headers=stack.auth) as session:
        for guid in stack.guids:
            async with session.post(f"{stack.base}/v1/subscriptions/{guid}/enable") as response:
                assert response.status == 200, await response.text()
        async with session.post(f"{stack.base}/v1/events", json=event(0, stack.domain, "template")) as response:
            assert response.status == 202, await response.text()
    store = Store(stack.db_url)
    try:
        async with store.write() as conn:
            hook_id = (await conn.execute(select(t.webhooks.c.id).where(t.webhooks.c.guid == stack.guids[0]))
                       ).scalar()
            template_pk = (await conn.execute(select(func.max(t.events.c.id)))).scalar()
        past = time.time() - AGE
        for start in range(0, rows, SEED_CHUNK):
            count = min(SEED_CHUNK, rows - start)
            async with store.write() as conn:
                events_above = (await conn.execute(select(func.max(t.events.c.id)))).scalar()
                deliveries_above = (await conn.execute(select(func.coalesce(func.max(t.deliveries.c.id), 0)))
                                    ).scalar()
                # A recursive count works on both backends (SQLite has no generate_series).
                await conn.execute(text(
                    "INSERT INTO events (event_id, account_id, domain_id, event_type, occurred_at, received_at, "
                    "payload) "
                    "WITH RECURSIVE s(n) AS (SELECT CAST(:first AS BIGINT) UNION ALL SELECT n + 1 FROM s "
                    "WHERE n < CAST(:last AS BIGINT)) "
                    "SELECT 'old-' || CAST(n AS TEXT), e.account_id, e.domain_id, 'delivered', "
                    "CAST(:past AS DOUBLE PRECISION) + n * 1e-4, CAST(:past AS DOUBLE PRECISION) + n * 1e-4, "
                    "e.payload FROM s, events e WHERE e.id = :template"),
                    {"first": start, "last": start + count - 1, "past": past, "template": template_pk})
                await conn.execute(text(
                    "INSERT INTO deliveries (event_pk, webhook_id, account_id, domain_id, status, attempts, "
                    "next_attempt_at, last_status_code, created_at, updated_at) "
                    "SELECT id, :hook, account_id, domain_id, 'succeeded', 1, NULL, 200, received_at, received_at "
                    "FROM events WHERE id > :above"), {"hook": hook_id, "above": events_above})
                await conn.execute(text(
                    "INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code, "
                    "response_excerpt, request_headers) "
                    "SELECT id, 1, created_at, 3.5, 200, 'ok', "
                    "'{\"content-type\": \"application/json\", \"user-agent\": \"mailhooks\"}' "
                    "FROM deliveries WHERE id > :above"), {"above": deliveries_above})
        if store.postgres:
            async with store.write() as conn:
                await conn.execute(text("ANALYZE"))
    finally:
        await store.close()


async def _old_rows(stack: Stack) -> int:
    """Deliveries still there from the seeded past."""
    from sqlalchemy import func, select

    from mailhooks.db import schema as t
    from mailhooks.db.store import Store

    store = Store(stack.db_url)
    try:
        async with store.read() as conn:
            d = t.deliveries
            return int((await conn.execute(select(func.count()).where(d.c.created_at < time.time() - AGE / 2))
                        ).scalar() or 0)
    finally:
        await store.close()


def _start(stack: Stack, db: str, phase: str) -> list[subprocess.Popen[bytes]]:
    if db == "sqlite":
        return [stack.run("serve", name=f"serve-retention-{phase}")]
    return [stack.run("api", name=f"api-retention-{phase}"), stack.run("worker", name=f"worker-retention-{phase}")]


def _restart_delivering(stack: Stack, db: str, procs: list[subprocess.Popen[bytes]]
                        ) -> list[subprocess.Popen[bytes]]:
    """Stop the delivering process (``serve``, or the worker) and start it again with the stack's env."""
    old = procs[0] if db == "sqlite" else procs[1]
    stop(old)
    stack.procs.remove(old)
    if db == "sqlite":
        return [stack.run("serve", name="serve-retention-purging")]
    return [procs[0], stack.run("worker", name="worker-retention-purging")]


async def run(db: str, tmp: Any, receiver: Receiver, rows: int, rate: float, seconds: float
              ) -> list[tuple[str, float, str, str, bool | None]]:
    """The scenario; its rows as (setting, value, unit, target, ok)."""
    out: list[tuple[str, float, str, str, bool | None]] = []
    label = "sqlite serve" if db == "sqlite" else "postgresql api + 1 worker"
    async with Stack(db, tmp, receiver) as stack:
        procs = _start(stack, db, "quiet")
        seeded_at = time.perf_counter()
        await _seed(stack, rows)
        out.append((f"{label}: seed {rows:,} finished deliveries", time.perf_counter() - seeded_at, "s", "", None))
        await asyncio.sleep(2)
        quiet = await live_latency(stack, receiver, rate, seconds)

        stack.env_extra["MAILHOOKS_RETENTION_DAYS"] = "1"
        restarted_at = time.perf_counter()
        procs = _restart_delivering(stack, db, procs)
        before = await _old_rows(stack)
        deadline = time.monotonic() + PURGE_START_WAIT
        while True:
            left = await _old_rows(stack)
            if left < before or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        window_start, left_at_start = time.perf_counter(), left
        busy = await live_latency(stack, receiver, rate, seconds)
        left_after_window = left_at_end = await _old_rows(stack)
        window = time.perf_counter() - window_start
        finish_deadline = time.monotonic() + FINISH_WAIT
        while left_at_end and time.monotonic() < finish_deadline:
            await asyncio.sleep(1)
            left_at_end = await _old_rows(stack)
        total = time.perf_counter() - restarted_at

    setting = f"{label}, {rate:.0f} live events/s for {seconds:.0f} s"
    for key in ("p50", "p99"):
        out.append((f"{setting}, no purge: {key}", quiet[key], "ms", "", None))
        out.append((f"{setting}, purging {rows:,}: {key}", busy[key], "ms", "", None))
    ratio = busy["p99"] / quiet["p99"] if quiet["p99"] else float("inf")
    out.append((f"{label}: p99 purging / p99 not", ratio, "x", "<= 2", ratio <= 2))
    out.append((f"{setting}, purging: live throughput / no purge", busy["throughput"] / quiet["throughput"], "x",
                "", None))
    out.append((f"{label}: purge rate during the live window", (left_at_start - left_after_window) / window,
                "deliveries/s", "", None))
    out.append((f"{label}: purge of {rows:,}, whole", (before - left_at_end) / total, "deliveries/s", "", None))
    out.append((f"{label}: purge finished within {seconds + FINISH_WAIT:.0f} s", float(left_at_end == 0), "yes=1",
                "", None))  # not a target of the issue: it says how far the pace got
    return out

