"""Baseline: the same signed ~1 KB payloads from a plain aiohttp client, no storage at all.

    python bench/baseline.py --url http://127.0.0.1:9100/hook --count 20000 --processes 2

Prints ``{"count": n, "seconds": s, "rate": n/s}`` as JSON. Each process sends count/processes
requests with ``--concurrency`` in flight, signing every request like mailhooks does.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from typing import Any

import aiohttp
import orjson
import uvloop
from harness import event

from mailhooks.core.payloads import PreparedEvent, canonical_event, new_event_id

SIGNING_KEY = "key-" + "0" * 32


def sample(i: int) -> PreparedEvent:
    """The event the drain scenarios ingest (``harness.event``), as mailhooks stores and renders it."""
    fields = {k: v for k, v in event(i, "bench.example", "baseline").items() if k not in ("id", "domain", "event")}
    stored = canonical_event("delivered", fields, event_id=new_event_id(), domain="bench.example",
                             account_guid="00000000-0000-0000-0000-000000000000", occurred_at=time.time())
    return PreparedEvent.prepare("mailgun", stored, "secret")

POOL = 1000  # events are encoded before timing starts, as mailhooks encodes at ingest; signing is per request


async def send(url: str, count: int, concurrency: int, ready: Any = None, go: Any = None) -> float:
    """Send ``count`` requests; returns the epoch time the last one finished."""
    events = [sample(i) for i in range(min(POOL, count))]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = iter(range(count))

        async def lane() -> None:
            for i in queue:
                body, headers = events[i % len(events)].render(SIGNING_KEY, f"msg_{i}")
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"receiver answered {response.status}")

        if ready is not None:
            ready.set()
            await asyncio.get_running_loop().run_in_executor(None, go.wait)
        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.time()


def _process(url: str, count: int, concurrency: int, ready: Any, go: Any, results: Any) -> None:
    results.put(uvloop.run(send(url, count, concurrency, ready, go)))


def run(url: str, count: int, processes: int, concurrency: int) -> dict[str, float]:
    """Time from the moment every process is ready (imports done, payloads built) until the last finishes."""
    ctx = multiprocessing.get_context("spawn")
    share = count // processes
    readies = [ctx.Event() for _ in range(processes)]
    go = ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=_process, args=(url, share, concurrency, readies[i], go, results))
             for i in range(processes)]
    for proc in procs:
        proc.start()
    for ready in readies:
        ready.wait()
    started = time.time()
    go.set()
    finished = max(results.get() for _ in procs)
    for proc in procs:
        proc.join()
    seconds = finished - started
    total = share * processes
    return {"count": total, "seconds": seconds, "rate": total / seconds}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(orjson.dumps(run(args.url, args.count, args.processes, args.concurrency)).decode())
