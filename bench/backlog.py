"""The ``backlog`` scenario: is the drain as fast with 1,000,000 pending as with 20,000, and is memory bounded?

One stack per backend, like the drains: SQLite ``mailhooks serve``; PostgreSQL ``mailhooks api`` plus two
``mailhooks worker``. ``--pending`` (default 1,000,000) events are ingested through ``POST /v1/events`` in
batches of 1,000 (4 in flight) while the webhook is held; then it is released (enable + recover, with the
dispatchers up and idle) and the clock runs until the receiver has every delivery, exactly as the 20,000
drain is timed. The rows: the ingest rate, the recover call's own time, the rate over the first 20 % of the
drain (the backlog still >= 80 %), the whole drain's rate and its ratio to the 20,000-event drain of the same
stack in the same run, and the peak RSS (``VmHWM``) of every mailhooks process over ingest and drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
from cpu import PER_K, CpuWindow
from harness import Receiver, Stack, ingest, peak_rss_mb

RowTuple = tuple[str, float, str, str, bool | None]
FIRST_SHARE = 0.2  # the early window: the backlog is still at least 80 % of its size
RSS_LIMIT_MB = 300
FLAT_TARGET = 0.9
# The release re-queues the whole backlog in one recover statement (a 1,000,000-row UPDATE), which on a
# busy machine can outlast the default 30 s statement deadline; the operator's setting for such a backlog.
ENV = {"MAILHOOKS_DATABASE_TIMEOUT": "180"}


async def _drain(receiver: Receiver, expected: int, within: float) -> tuple[int, float, float]:
    """Poll the receiver until ``expected`` arrived: (received, epoch when the first 20 % had, epoch at the end)."""
    deadline = time.monotonic() + within
    got, early_at = 0, 0.0
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            got = await receiver.received()
        if not early_at and got >= FIRST_SHARE * expected:
            early_at = time.time()
        if got >= expected:
            break
        await asyncio.sleep(0.05)
    return got, early_at, time.time()


async def _wait_workers_ready(tmp: Path, names: list[str]) -> None:
    deadline = time.monotonic() + 30
    for name in names:
        log = tmp / f"{name}.log"
        while b"dispatcher_started" not in log.read_bytes():
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start: see {log}")
            await asyncio.sleep(0.05)


async def run(db: str, workers: int, tmp: Path, receiver: Receiver, pending: int, within: float,
              reference: tuple[int, float]) -> list[RowTuple]:
    """The scenario on one stack (``workers`` 0: SQLite ``serve``); ``reference`` is the (events, deliveries/s)
    of the x1 drain of the same stack in this run. Its rows as (setting, value, unit, target, ok)."""
    label = "sqlite serve" if workers == 0 else f"postgresql api + {workers} workers"
    out: list[RowTuple] = []
    async with Stack(db, tmp, receiver, env_extra=ENV) as stack:
        name = f"backlog-{db}"
        if workers == 0:
            procs = {"serve": stack.run("serve", name=name)}
        else:
            procs = {"api": stack.run("api", name=f"api-{name}")}
            procs |= {f"worker{i}": stack.run("worker", name=f"worker{i}-{name}") for i in range(workers)}
            await _wait_workers_ready(tmp, [f"worker{i}-{name}" for i in range(workers)])
        await receiver.call("/reset")
        rate = await ingest(stack, pending, batch=1000, concurrency=4)
        out.append((f"{label}, ingest {pending:,} events (batches of 1000)", rate, "events/s", "", None))
        assert receiver.proc is not None
        window = CpuWindow({**{n: [p.pid] for n, p in procs.items()}, "receiver": [receiver.proc.pid]}, stack.pg_name)
        window.start()
        released_at = time.time()
        requeued = await stack.release()
        recovered_at = time.time()
        if requeued != pending:
            raise SystemExit(f"backlog {label}: recover re-queued {requeued} of {pending}")
        got, early_at, done_at = await _drain(receiver, pending, within)
        spent = window.stop()
        if got < pending:
            raise SystemExit(f"backlog {label}: only {got:,} of {pending:,} arrived in {within:.0f} s")
        drain = got / (done_at - released_at)
        out.append((f"{label}, {pending:,} pending: release (enable + recover call)", recovered_at - released_at,
                    "s", "", None))
        out.append((f"{label}, {pending:,} pending: first {FIRST_SHARE:.0%} of the drain",
                    FIRST_SHARE * pending / (early_at - released_at), "deliveries/s", "", None))
        out.append((f"{label}, drain of {pending:,} pending", drain, "deliveries/s", "", None))
        ratio = drain / reference[1]
        out.append((f"{label}, drain {pending:,} pending / drain {reference[0]:,} pending", ratio, "x",
                    f">= {FLAT_TARGET}", ratio >= FLAT_TARGET))
        out += [(f"{label}, {pending:,} pending: CPU {group} over the drain", 1000 * seconds / max(got, 1), PER_K,
                 "", None) for group, seconds in spent.items() if db == "postgresql" or group != "postgresql"]
        for proc_name, proc in procs.items():
            peak = peak_rss_mb(proc.pid)
            out.append((f"{label}, {pending:,} pending: peak RSS of {proc_name} (ingest + drain)", peak, "MB",
                        f"< {RSS_LIMIT_MB}", peak < RSS_LIMIT_MB))
    return out
