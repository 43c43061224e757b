"""The ``replay`` scenario: does a huge replay stall live traffic?

A stack (PostgreSQL, ``mailhooks api`` + one ``mailhooks worker``, by default) with two subscriptions on
the benchmark receiver: ``/hook`` takes the live ``delivered`` events, ``/hook2`` takes ``opened`` events,
of which ``--replay-rows`` (default 1,000,000) are seeded an hour in the past with one *failed* delivery
each. Then, twice, single live events at a fixed rate for a fixed time, their latency measured from the
ingest acknowledgement to arrival at the receiver:

1. with nothing else running;
2. while ``POST /v1/replays`` (status failed, the ``/hook2`` subscription, the past two hours) works through
   the million rows: the replay's own throughput in that window is measured too.

The replay is left unfinished when the window ends: the question is what it does to live work meanwhile.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
import orjson
from harness import Receiver, Stack, event

SEED_CHUNK = 50_000  # rows per seeding transaction


async def _seed(stack: Stack, rows: int) -> str:
    """``rows`` ``opened`` events an hour old with one failed delivery each to the second subscription
    (switched to ``opened``, so that live ``delivered`` events go to the first only); its guid."""
    from sqlalchemy import func, select, text, update

    from mailhooks.db import schema as t
    from mailhooks.db.store import Store

    async with aiohttp.ClientSession(headers=stack.auth) as session:
        for guid in stack.guids:
            async with session.post(f"{stack.base}/v1/subscriptions/{guid}/enable") as response:
                assert response.status == 200, await response.text()
        template = {**event(0, stack.domain, "template"), "event": "opened"}
        async with session.post(f"{stack.base}/v1/events", json=template) as response:
            assert response.status == 202, await response.text()
    store = Store(stack.db_url)
    try:
        async with store.write() as conn:
            second = t.webhooks.c.guid == stack.guids[1]
            await conn.execute(update(t.webhooks).where(second).values(event_type="opened"))
            hook_id = (await conn.execute(select(t.webhooks.c.id).where(second))).scalar()
            template_pk = (await conn.execute(select(func.max(t.events.c.id)))).scalar()
        past = time.time() - 3600
        for start in range(0, rows, SEED_CHUNK):
            count = min(SEED_CHUNK, rows - start)
            # One transaction per chunk, each statement well inside the statement deadline.
            async with store.write() as conn:
                above = (await conn.execute(select(func.max(t.events.c.id)))).scalar()
                # A recursive count works on both backends (SQLite has no generate_series).
                await conn.execute(text(
                    "INSERT INTO events (event_id, account_id, domain_id, event_type, occurred_at, received_at, "
                    "payload) "
                    "WITH RECURSIVE s(n) AS (SELECT CAST(:first AS BIGINT) UNION ALL SELECT n + 1 FROM s "
                    "WHERE n < CAST(:last AS BIGINT)) "
                    "SELECT 'seed-' || CAST(n AS TEXT), e.account_id, e.domain_id, 'opened', "
                    "CAST(:past AS DOUBLE PRECISION), "
                    "CAST(:past AS DOUBLE PRECISION) + n * 1e-6, e.payload "
                    "FROM s, events e WHERE e.id = :template"),
                    {"first": start, "last": start + count - 1, "past": past, "template": template_pk})
                await conn.execute(text(
                    "INSERT INTO deliveries (event_pk, webhook_id, account_id, domain_id, status, attempts, "
                    "next_attempt_at, last_error, created_at, updated_at) "
                    "SELECT id, :hook, account_id, domain_id, 'failed', 1, NULL, 'seeded', received_at, received_at "
                    "FROM events WHERE id > :above"), {"hook": hook_id, "above": above})
        if store.postgres:
            async with store.write() as conn:
                await conn.execute(text("ANALYZE"))
    finally:
        await store.close()
    return stack.guids[1]


async def _live(stack: Stack, receiver: Receiver, rate: float, seconds: float) -> dict[str, float]:
    """Single ``delivered`` events at ``rate``/s for ``seconds``: latency percentiles (ms, from the moment the
    event is sent, ingest included) and throughput."""
    await receiver.call("/reset")
    await receiver.call("/track?on=1")
    run_id = "live" + uuid.uuid4().hex[:6]
    acked: dict[str, float] = {}
    headers = {**stack.auth, "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async def one(i: int) -> None:
            sent = time.time()
            async with session.post(f"{stack.base}/v1/events", data=orjson.dumps(event(i, stack.domain, run_id))
                                    ) as response:
                await response.read()
                if response.status == 202:
                    acked[f"{run_id}-{i}"] = sent

        tasks = []
        started = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    window = time.perf_counter() - started
    deadline = time.monotonic() + 60
    arrivals: dict[str, float] = {}
    while time.monotonic() < deadline:
        arrivals = orjson.loads(await receiver.call("/arrivals"))
        if all(k in arrivals for k in acked):
            break
        await asyncio.sleep(0.2)
    total = int(orjson.loads(await receiver.call("/stats"))["received"])
    await receiver.call("/track?on=0")
    lat = sorted(max(0.0, arrivals[k] - t) * 1000 for k, t in acked.items() if k in arrivals)
    if len(lat) < len(acked):  # an acknowledged event must arrive; one refused (a 503) is the client's to resend
        raise SystemExit(f"replay: {len(acked) - len(lat)} acknowledged live events never arrived")
    last = max(arrivals[k] for k in acked)
    first_sent = min(acked.values())

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))]

    return {"p50": pct(0.50), "p99": pct(0.99), "max": lat[-1], "throughput": len(lat) / (last - first_sent),
            "others": (total - len(lat)) / window, "refused": int(rate * seconds) - len(acked)}


async def _wait_running(stack: Stack, replay_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession(headers=stack.auth) as session:
        while time.monotonic() < deadline:
            async with session.get(f"{stack.base}/v1/replays/{replay_id}") as response:
                state: dict[str, Any] = await response.json()
            if state["state"] == "running" and state["queued"] > 0:
                return state
            await asyncio.sleep(0.1)
    raise SystemExit(f"replay: never started running ({state})")


async def _replay_state(stack: Stack, replay_id: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers=stack.auth) as session, \
            session.get(f"{stack.base}/v1/replays/{replay_id}") as response:
        return dict(await response.json())


async def run(db: str, tmp: Any, receiver: Receiver, rows: int, rate: float, seconds: float
              ) -> list[tuple[str, float, str, str, bool | None]]:
    """The scenario; its rows as (setting, value, unit, target, ok)."""
    out: list[tuple[str, float, str, str, bool | None]] = []
    async with Stack(db, tmp, receiver, hooks=2) as stack:
        if db == "sqlite":
            stack.run("serve", name="serve-replay")
            label = "sqlite serve"
        else:
            stack.run("api", name="api-replay")
            stack.run("worker", name="worker-replay")
            label = "postgresql api + 1 worker"
        seeded_at = time.perf_counter()
        guid = await _seed(stack, rows)
        out.append((f"{label}: seed {rows:,} failed deliveries", time.perf_counter() - seeded_at, "s", "", None))
        await asyncio.sleep(2)  # the worker is up and idle
        quiet = await _live(stack, receiver, rate, seconds)
        async with aiohttp.ClientSession(headers=stack.auth) as session, session.post(
                f"{stack.base}/v1/replays", json={"domain": stack.domain, "since": time.time() - 7200,
                                                  "status": "failed", "webhook": guid}) as response:
            assert response.status == 202, await response.text()
            replay_id = (await response.json())["id"]
        await _wait_running(stack, replay_id)
        busy = await _live(stack, receiver, rate, seconds)
        state = await _replay_state(stack, replay_id)
        setting = f"{label}, {rate:.0f} live events/s for {seconds:.0f} s"
        for key, what in (("p50", "p50"), ("p99", "p99")):
            out.append((f"{setting}, quiet: {what}", quiet[key], "ms", "", None))
            out.append((f"{setting}, {rows:,}-row replay running: {what}", busy[key], "ms", "", None))
        out.append((f"{setting}, quiet: max", quiet["max"], "ms", "", None))
        out.append((f"{setting}, replay running: max", busy["max"], "ms", "", None))
        out.append((f"{setting}, quiet: events refused (503)", quiet["refused"], "events", "", None))
        out.append((f"{setting}, replay running: events refused (503)", busy["refused"], "events", "", None))
        out.append((f"{setting}, quiet: live throughput", quiet["throughput"], "deliveries/s", "", None))
        out.append((f"{setting}, replay running: live throughput", busy["throughput"], "deliveries/s",
                    ">= 0.9 x quiet", busy["throughput"] >= 0.9 * quiet["throughput"]))
        out.append((f"{setting}, replay running: replayed deliveries", busy["others"], "deliveries/s", "", None))
        out.append((f"{label}: replay progress when the window ended", 100 * float(state["progress"]), "%", "", None))
    return out
