"""``make bench``: every benchmark scenario in one run, one table at the end.

    .venv/bin/python bench/run.py                 # everything (about 7 minutes on the 2-core machine)
    .venv/bin/python bench/run.py --only drain,baseline --pending 100000 --json out.json

Scenarios (all loops bounded in count and time):

1. drain     20,000 events x 1 webhook and 5,000 events x 3 webhooks, ingested while the webhooks are
             held, then released at once (enable + the native recover call); time from the release
             until the receiver has every delivery. SQLite with ``mailhooks serve``; PostgreSQL with
             ``mailhooks api`` plus 1 and 2 ``mailhooks worker`` processes.
2. baseline  the same signed ~1.1 KB payloads from a plain aiohttp client, no storage (bench/baseline.py),
             in 1 and 2 processes, 32 requests in flight each (the dispatcher's per-URL cap); the
             drains are printed as a fraction of it.
3. latency   single events at a fixed 500/s for 30 s into SQLite ``serve``; p50/p95/p99 from the ingest
             acknowledgement to arrival at the receiver.
4. ingest    events/s accepted by ``POST /v1/events``: batches of 100 (4 requests in flight, webhooks
             held so nothing else runs) and single events (16 in flight, while the dispatcher delivers).
5. mgmt      requests/s for ``GET /v3/domains/{d}/webhooks`` at concurrency 32, next to ``GET /livez``
             (no auth, no database) on the same server.
6. memory    ``--pending`` (default 1,000,000) deliveries pending in SQLite ``serve`` while the receiver
             is down for 10 s; its peak RSS; then the receiver comes back and everything drains.

7. intake    events through an intake source, as the platforms send them: SendGrid's signed batches and
             Mailgun's single signed events, into SQLite ``serve`` (bench/intake.py).
8. replay    live latency p50/p99 and throughput (single events at a fixed rate, PostgreSQL api + worker)
             with and without a ``--replay-rows`` (default 1,000,000) delivery replay running
             (bench/replay.py).
9. retention live latency p50/p99 (single events at ``--retention-rate``/s) with and without the purge of
             ``--retention-rows`` (default 1,000,000) finished deliveries; the purge's rate (bench/retention.py).
Everything it starts (receiver, servers, workers, databases: temp SQLite files, PostgreSQL databases at
``MAILHOOKS_TEST_PG`` or 127.0.0.1:5432 that are dropped afterwards) is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import baseline
import httpload
import intake
import orjson
import replay
import retention
import uvloop
from harness import Receiver, Stack, event, ingest, new_tmp, peak_rss_mb

# In flight per baseline process: the dispatcher's default cap per URL (MAILHOOKS_PER_URL_CONCURRENCY),
# so that both push one receiver URL equally hard and the ratio compares the work per delivery.
BASELINE_CONCURRENCY = 32


def stack_label(workers: int) -> str:
    """0 workers: SQLite ``serve``; N: PostgreSQL with N ``worker`` processes (the drain stacks)."""
    return "sqlite serve" if workers == 0 else f"postgresql {workers} worker{'s' * (workers > 1)}"


@dataclass
class Row:
    scenario: str
    setting: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = new_tmp()
        self.receiver = Receiver(self.tmp)
        self.rows: list[Row] = []
        self.drains: dict[tuple[str, int, int], float] = {}  # (db, workers, hooks) -> deliveries/s
        self.baselines: dict[int, float] = {}

    def add(self, row: Row) -> None:
        self.rows.append(row)
        mark = "" if row.ok is None else ("  ok" if row.ok else "  MISSED")
        value = f"{row.value:>10,.2f}" if row.unit == "x" else f"{row.value:>10,.1f}"
        print(f"  {row.scenario:<9} {row.setting:<52} {value} {row.unit:<14} {row.target}{mark}", flush=True)

    # ------------------------------------------------------------------ intake through a source
    async def intake(self) -> None:
        async with Stack("sqlite", self.tmp, self.receiver) as stack:
            stack.run("serve", name="serve-intake")
            rate = await intake.sendgrid(stack, self.args.sendgrid_events, self.args.sendgrid_batch)
            self.add(Row("intake", f"sqlite serve, SendGrid batches of {self.args.sendgrid_batch}, "
                                   f"{self.args.sendgrid_events:,} events", rate, "events/s"))
            rate = await intake.mailgun(stack, self.args.mailgun_events)
            self.add(Row("intake", f"sqlite serve, Mailgun single events, {self.args.mailgun_events:,}", rate,
                         "events/s"))

    # ------------------------------------------------------------------ 1 + 4: drains (and ingest)
    async def drain(self, db: str, workers: int, events: int, hooks: int, extras: bool = False) -> None:
        label = stack_label(workers)
        async with Stack(db, self.tmp, self.receiver, hooks=hooks) as stack:
            name = f"{db}-{workers}-{hooks}"
            if workers == 0:
                stack.run("serve", name=f"serve-{name}")
            else:
                stack.run("api", name=f"api-{name}")
                for i in range(workers):
                    stack.run("worker", name=f"worker{i}-{name}")
            await self.receiver.call("/reset")
            batched = await ingest(stack, events, batch=100, concurrency=4)
            if hooks == 1:
                self.add(Row("ingest", f"{db}, batches of 100, {events:,} events", batched, "events/s",
                             ">= 10,000", batched >= 10_000))
            await self._wait_workers_ready(stack, workers, name)
            expected = events * hooks
            released_at = time.time()
            requeued = await stack.release()
            assert requeued == expected, (requeued, expected)
            got, done_at = await self.receiver.wait_for(expected, within=self.args.drain_timeout)
            rate = got / (done_at - released_at)
            self.drains[(db, workers, hooks)] = rate
            if got < expected:
                raise SystemExit(f"drain {label}: only {got} of {expected} arrived in {self.args.drain_timeout} s")
            self.add(Row("drain", f"{label}, {events:,} events x {hooks} webhook{'s' * (hooks > 1)}", rate,
                         "deliveries/s"))
            if extras:
                await self.singles(stack, db)
                await self.latency(stack)
                await self.mgmt(stack)

    async def _wait_workers_ready(self, stack: Stack, workers: int, name: str) -> None:
        deadline = time.monotonic() + 30
        for i in range(workers):
            log = self.tmp / f"worker{i}-{name}.log"
            while b"dispatcher_started" not in log.read_bytes():
                if time.monotonic() > deadline:
                    raise SystemExit(f"worker {i} did not start: see {log}")
                await asyncio.sleep(0.05)

    async def singles(self, stack: Stack, db: str) -> None:
        await self.receiver.call("/reset")
        rate = await ingest(stack, self.args.singles, batch=1, concurrency=16)
        self.add(Row("ingest", f"{db} serve, single events, {self.args.singles:,} requests", rate, "events/s"))
        await self.receiver.wait_for(self.args.singles, within=60)

    # ------------------------------------------------------------------ 3: latency
    async def latency(self, stack: Stack, rate: float = 500.0) -> None:
        seconds = self.args.latency_seconds
        await self.receiver.call("/reset")
        await self.receiver.call("/track?on=1")
        run_id = "lat" + uuid.uuid4().hex[:6]
        acked: dict[str, float] = {}
        headers = {**stack.auth, "Content-Type": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async def one(i: int) -> None:
                async with session.post(f"{stack.base}/v1/events", data=orjson.dumps(event(i, stack.domain, run_id))
                                        ) as response:
                    await response.read()
                    if response.status == 202:
                        acked[f"{run_id}-{i}"] = time.time()

            tasks = []
            started = time.perf_counter()
            for i in range(int(rate * seconds)):  # open loop: one event every 1/rate s, whatever the answers
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)
        await self.receiver.wait_for(len(acked), within=30)
        arrivals = orjson.loads(await self.receiver.call("/arrivals"))
        await self.receiver.call("/track?on=0")
        lat = sorted(max(0.0, arrivals[k] - t) * 1000 for k, t in acked.items() if k in arrivals)
        missing = int(rate * seconds) - len(lat)
        if missing:
            raise SystemExit(f"latency: {missing} events were not acknowledged or never arrived")

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(p * len(lat)))]

        setting = f"sqlite serve, {rate:.0f} events/s for {seconds:.0f} s"
        self.add(Row("latency", f"{setting}: p50", pct(0.50), "ms"))
        self.add(Row("latency", f"{setting}: p95", pct(0.95), "ms"))
        self.add(Row("latency", f"{setting}: p99", pct(0.99), "ms", "<= 100", pct(0.99) <= 100))

    # ------------------------------------------------------------------ 5: management API
    async def mgmt(self, stack: Stack) -> None:
        count = self.args.mgmt_requests
        auth = httpload.auth_header(f"api:{stack.key}")
        listed = await httpload.load(f"{stack.base}/v3/domains/{stack.domain}/webhooks", count, 32, auth)
        bare = await httpload.load(f"{stack.base}/livez", count, 32, {})
        for result, what in ((listed, "webhooks list"), (bare, "/livez")):
            if set(result["statuses"]) != {"200"}:  # type: ignore[arg-type]
                raise SystemExit(f"mgmt {what}: answers {result['statuses']}")
        ratio = float(listed["rate"]) / float(bare["rate"])  # type: ignore[arg-type]
        self.add(Row("mgmt", "GET /v3/domains/{d}/webhooks, concurrency 32", float(listed["rate"]),  # type: ignore
                     "requests/s"))
        self.add(Row("mgmt", "GET /livez (bare endpoint), concurrency 32", float(bare["rate"]),  # type: ignore
                     "requests/s"))
        self.add(Row("mgmt", "webhooks list / bare", ratio, "x", ">= 0.5", ratio >= 0.5))

    # ------------------------------------------------------------------ 2: baseline
    async def baseline(self) -> None:
        await self.receiver.call("/reset")
        for processes in (1, 2):
            result = await asyncio.get_running_loop().run_in_executor(
                None, baseline.run, self.receiver.url("/hook"), self.args.baseline_count, processes,
                BASELINE_CONCURRENCY)
            self.baselines[processes] = result["rate"]
            self.add(Row("baseline", f"plain aiohttp, no storage, {processes} process{'es' * (processes > 1)}",
                         result["rate"], "requests/s"))

    def ratios(self) -> None:
        targets = {("sqlite", 0): (1, 0.5), ("postgresql", 1): (1, None), ("postgresql", 2): (2, 0.6)}
        for (db, workers, hooks), rate in self.drains.items():
            processes, target = targets[(db, workers)]
            if processes not in self.baselines:
                continue
            ratio = rate / self.baselines[processes]
            label = stack_label(workers)
            self.add(Row("ratio", f"{label}, x{hooks} / baseline {processes} process{'es' * (processes > 1)}",
                         ratio, "x", f">= {target}" if target else "",
                         (ratio >= target) if target else None))

    # ------------------------------------------------------------------ 6: memory
    async def memory(self) -> None:
        pending = self.args.pending
        # Retries 5 s apart, many of them: what failed while the receiver was down comes back soon after it
        # returns, and nothing runs out of attempts.
        env = {"MAILHOOKS_RETRY_SCHEDULE": ",".join(["5"] * 12)}
        async with Stack("sqlite", self.tmp, self.receiver, env_extra=env) as stack:
            serve = stack.run("serve", name="serve-memory")
            started = time.perf_counter()
            rate = await ingest(stack, pending, batch=1000, concurrency=4)
            self.add(Row("memory", f"sqlite serve, ingest {pending:,} events (batches of 1000)", rate, "events/s"))
            self.receiver.down()
            await stack.release()
            await asyncio.sleep(10)
            down_rss = peak_rss_mb(serve.pid)
            self.receiver.up()
            back = time.time()
            got, done = await self.receiver.wait_for(pending, within=self.args.memory_timeout)
            peak = peak_rss_mb(serve.pid)
            if got < pending:
                raise SystemExit(f"memory: only {got} of {pending} arrived in {self.args.memory_timeout} s")
            self.add(Row("memory", f"peak RSS with {pending:,} pending, receiver down 10 s", down_rss, "MB"))
            self.add(Row("memory", "peak RSS over the whole run, drain included", peak, "MB", "< 300", peak < 300))
            self.add(Row("memory", f"drain of {pending:,} once the receiver is back", got / (done - back),
                         "deliveries/s"))
            self.add(Row("memory", "scenario wall time", time.perf_counter() - started, "s"))

    # ------------------------------------------------------------------ all
    async def run(self) -> None:
        only = set(self.args.only.split(",")) if self.args.only else None

        def wanted(name: str) -> bool:
            return only is None or name in only

        self.receiver.up()
        try:
            if wanted("baseline") or wanted("drain"):
                await self.baseline()
            if wanted("drain") or wanted("latency") or wanted("ingest") or wanted("mgmt"):
                await self.drain("sqlite", 0, self.args.events, 1, extras=True)
            if wanted("drain"):
                await self.drain("sqlite", 0, self.args.events3, 3)
                for workers in (1, 2):
                    await self.drain("postgresql", workers, self.args.events, 1)
                    await self.drain("postgresql", workers, self.args.events3, 3)
                self.ratios()
            if wanted("memory"):
                await self.memory()
            if wanted("intake"):
                await self.intake()
            if wanted("replay"):
                for setting, value, unit, target, ok in await replay.run(
                        self.args.replay_db, self.tmp, self.receiver, self.args.replay_rows, self.args.replay_rate,
                        self.args.replay_seconds):
                    self.add(Row("replay", setting, value, unit, target, ok))
            if wanted("retention"):
                for setting, value, unit, target, ok in await retention.run(
                        self.args.retention_db, self.tmp, self.receiver, self.args.retention_rows,
                        self.args.retention_rate, self.args.retention_seconds):
                    self.add(Row("retention", setting, value, unit, target, ok))
        finally:
            self.receiver.down()


def table(rows: list[Row]) -> str:
    lines = ["| scenario | setting | measured | unit | target | |", "|---|---|---:|---|---|---|"]
    for r in rows:
        value = f"{r.value:,.2f}" if r.unit == "x" else f"{r.value:,.1f}" if r.value < 1000 else f"{r.value:,.0f}"
        verdict = "" if r.ok is None else ("ok" if r.ok else "**missed**")
        lines.append(f"| {r.scenario} | {r.setting} | {value} | {r.unit} | {r.target} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="",
                        help="comma-separated: baseline,drain,latency,ingest,mgmt,memory,intake,replay,retention")
    parser.add_argument("--events", type=int, default=20_000, help="drain with one webhook")
    parser.add_argument("--events3", type=int, default=5_000, help="drain with three webhooks")
    parser.add_argument("--baseline-count", type=int, default=40_000)
    parser.add_argument("--singles", type=int, default=2_000)
    parser.add_argument("--latency-seconds", type=float, default=30)
    parser.add_argument("--mgmt-requests", type=int, default=10_000)
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--drain-timeout", type=float, default=120)
    parser.add_argument("--memory-timeout", type=float, default=420)
    parser.add_argument("--sendgrid-events", type=int, default=20_000, help="intake: SendGrid events")
    parser.add_argument("--sendgrid-batch", type=int, default=100, help="intake: SendGrid events per POST")
    parser.add_argument("--mailgun-events", type=int, default=2_000, help="intake: Mailgun events (one per POST)")
    parser.add_argument("--replay-rows", type=int, default=1_000_000, help="failed deliveries the replay takes")
    parser.add_argument("--replay-rate", type=float, default=50, help="live events/s beside the replay")
    parser.add_argument("--replay-seconds", type=float, default=20)
    parser.add_argument("--replay-db", default="postgresql", choices=["postgresql", "sqlite"])
    parser.add_argument("--retention-rows", type=int, default=1_000_000, help="finished deliveries to purge")
    parser.add_argument("--retention-rate", type=float, default=200, help="live events/s beside the purge")
    parser.add_argument("--retention-seconds", type=float, default=20)
    parser.add_argument("--retention-db", default="postgresql", choices=["postgresql", "sqlite"])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    started = time.perf_counter()
    bench = Bench(args)
    print(f"mailhooks benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; logs in {bench.tmp}", flush=True)
    try:
        uvloop.run(bench.run())
    finally:
        print(f"\n{table(bench.rows)}\n\ntotal {time.perf_counter() - started:.0f} s", flush=True)
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in bench.rows], indent=1))


if __name__ == "__main__":
    main()
