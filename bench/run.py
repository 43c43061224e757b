"""``make bench``: every benchmark scenario in one run, one table at the end, each target of issue 13 with
its verdict (``ok`` / ``MISSED``).

    .venv/bin/python bench/run.py                 # everything (about 20 minutes on the quiet 2-core machine)
    .venv/bin/python bench/run.py --only drain,baseline --json out.json
    .venv/bin/python bench/run.py --only backlog --pending 100000    # a quick, scaled-down backlog

Scenarios (all loops bounded in count and time):

1. drain     20,000 events x 1 webhook and 5,000 events x 3 webhooks, ingested while the webhooks are
             held, then released at once (enable + the native recover call); time from the release
             until the receiver has every delivery. SQLite with ``mailhooks serve``; PostgreSQL with
             ``mailhooks api`` plus 1 and 2 ``mailhooks worker`` processes. Targets: SQLite x1 and x3
             >= 0.75 of the 1-process baseline, PostgreSQL 1 worker >= 0.6 of it, 2 workers >= 0.75 of
             the 2-process baseline.
2. baseline  the same signed ~1.1 KB payloads from a plain aiohttp client, no storage (bench/baseline.py),
             in 1 and 2 processes, 32 requests in flight each (the dispatcher's per-URL cap); the
             drains are printed as a fraction of it.
3. latency   single events at a fixed 500/s for 30 s into SQLite ``serve``; p50/p95/p99 from the ingest
             acknowledgement to arrival at the receiver (p99 <= 50 ms).
4. ingest    events/s accepted by ``POST /v1/events``: batches of 100 (4 requests in flight, webhooks
             held so nothing else runs; >= 20,000/s) on every drain stack; and ``--singles`` (5,000)
             single events, 16 in flight, while the dispatcher delivers them, followed at once by
             ``GET /livez`` of the same server at the same concurrency: single events >= 0.3x the bare
             endpoint, on SQLite ``serve`` and on PostgreSQL ``api`` + 1 worker.
5. mgmt      requests/s for ``GET /v3/domains/{d}/webhooks`` at concurrency 32, next to ``GET /livez``
             (no auth, no database) on the same server.
6. scale     PostgreSQL drains of 20,000 x 1 with 1, 2 (the drain runs above) and 4 workers; per run,
             CPU seconds per 1,000 deliveries of the api, each worker, PostgreSQL (every ``postgres``
             process) and the receiver, from /proc (bench/cpu.py); the rate's gain per step, the worker
             count past which it stops rising, and PostgreSQL's share of the cores.
7. backlog   ``--pending`` (1,000,000) events ingested in batches of 1,000 with the webhook held, then
             drained like the 20,000 drain: SQLite ``serve`` and PostgreSQL ``api`` + 2 workers. The
             drain >= 0.9x the 20,000 x1 drain of the same stack in this run; the rate over the first
             20 %; the peak RSS (VmHWM) of every mailhooks process < 300 MB (bench/backlog.py).
8. retention live latency p50/p99 (single events at ``--retention-rate``/s) with and without the purge of
             ``--retention-rows`` (default 1,000,000) finished deliveries (p99 during <= 2x without); the
             purge's rate (bench/retention.py).
9. intake    events through an intake source, as the platforms send them: SendGrid's signed batches and
             Mailgun's single signed events, into SQLite ``serve`` (bench/intake.py).
10. replay   live latency p50/p99 and throughput (single events at a fixed rate, PostgreSQL api + worker)
             with and without a ``--replay-rows`` (default 1,000,000) delivery replay running
             (bench/replay.py).
Everything it starts (receiver, servers, workers, databases: temp SQLite files, PostgreSQL databases at
``MAILHOOKS_TEST_PG`` or 127.0.0.1:5432 that are dropped afterwards) is stopped and removed at the end.
The whole default run took 1,168 s (about 20 minutes) on the quiet 2-core machine on 2026-12-01, most of it
the two 1,000,000 backlogs (about 5 minutes each), the retention and replay scenarios (about 3 and 1.5
minutes); far longer while other work shares it.
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
import backlog
import baseline
import cpu
import httpload
import intake
import orjson
import replay
import retention
import uvloop
from harness import Receiver, Stack, event, ingest, new_tmp

# In flight per baseline process: the dispatcher's default cap per URL (MAILHOOKS_PER_URL_CONCURRENCY),
# so that both push one receiver URL equally hard and the ratio compares the work per delivery.
BASELINE_CONCURRENCY = 32
# Issue 13's targets.
RATIO_TARGETS = {("sqlite", 0): (1, 0.75), ("postgresql", 1): (1, 0.6), ("postgresql", 2): (2, 0.75)}
BATCHED_INGEST_TARGET = 20_000  # events/s
SINGLES_TARGET = 0.3  # single-event ingest while delivering / bare endpoint, same server, same concurrency
SINGLES_CONCURRENCY = 16
LATENCY_P99_TARGET = 50  # ms at 500 events/s
SCALE_WORKERS = (1, 2, 4)
FINE_UNITS = {"x", cpu.PER_K}  # printed with two decimals


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
        # (db, workers, hooks) -> (CPU seconds per process group over the drain, drain seconds, deliveries)
        self.cpu: dict[tuple[str, int, int], tuple[dict[str, float], float, int]] = {}
        self.baselines: dict[int, float] = {}

    def add(self, row: Row) -> None:
        self.rows.append(row)
        mark = "" if row.ok is None else ("  ok" if row.ok else "  MISSED")
        value = f"{row.value:>10,.2f}" if row.unit in FINE_UNITS else f"{row.value:>10,.1f}"
        print(f"  {row.scenario:<9} {row.setting:<72} {value} {row.unit:<14} {row.target}{mark}", flush=True)

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
    async def drain(self, db: str, workers: int, events: int, hooks: int, extras: tuple[str, ...] = ()) -> None:
        """One drain; ``extras`` (singles, latency, mgmt) then run on the same stack, in that order."""
        label = stack_label(workers)
        async with Stack(db, self.tmp, self.receiver, hooks=hooks) as stack:
            name = f"{db}-{workers}-{hooks}"
            groups: dict[str, list[int]] = {}
            if workers == 0:
                groups["serve"] = [stack.run("serve", name=f"serve-{name}").pid]
            else:
                groups["api"] = [stack.run("api", name=f"api-{name}").pid]
                for i in range(workers):
                    groups[f"worker{i}"] = [stack.run("worker", name=f"worker{i}-{name}").pid]
            assert self.receiver.proc is not None
            groups["receiver"] = [self.receiver.proc.pid]
            await self.receiver.call("/reset")
            batched = await ingest(stack, events, batch=100, concurrency=4)
            if hooks == 1:
                self.add(Row("ingest", f"{stack_label(workers)}, batches of 100, {events:,} events", batched,
                             "events/s", f">= {BATCHED_INGEST_TARGET:,}", batched >= BATCHED_INGEST_TARGET))
            await self._wait_workers_ready(stack, workers, name)
            expected = events * hooks
            window = cpu.CpuWindow(groups, stack.pg_name)
            window.start()
            released_at = time.time()
            requeued = await stack.release()
            assert requeued == expected, (requeued, expected)
            got, done_at = await self.receiver.wait_for(expected, within=self.args.drain_timeout)
            self.cpu[(db, workers, hooks)] = (window.stop(), done_at - released_at, got)
            rate = got / (done_at - released_at)
            self.drains[(db, workers, hooks)] = rate
            if got < expected:
                raise SystemExit(f"drain {label}: only {got} of {expected} arrived in {self.args.drain_timeout} s")
            self.add(Row("drain", f"{label}, {events:,} events x {hooks} webhook{'s' * (hooks > 1)}", rate,
                         "deliveries/s"))
            if "singles" in extras:
                await self.singles(stack, "sqlite serve" if workers == 0 else label.replace(" ", " api + ", 1))
            if "latency" in extras:
                await self.latency(stack)
            if "mgmt" in extras:
                await self.mgmt(stack)

    async def _wait_workers_ready(self, stack: Stack, workers: int, name: str) -> None:
        deadline = time.monotonic() + 30
        for i in range(workers):
            log = self.tmp / f"worker{i}-{name}.log"
            while b"dispatcher_started" not in log.read_bytes():
                if time.monotonic() > deadline:
                    raise SystemExit(f"worker {i} did not start: see {log}")
                await asyncio.sleep(0.05)

    async def singles(self, stack: Stack, label: str) -> None:
        """Single-event ingest while the dispatcher delivers them, then the bare ``/livez`` of the same server
        at the same concurrency right after; the ratio is the issue's target."""
        count, lanes = self.args.singles, SINGLES_CONCURRENCY
        await self.receiver.call("/reset")
        rate = await ingest(stack, count, batch=1, concurrency=lanes)
        self.add(Row("ingest", f"{label}, single events while delivering, {count:,} requests, {lanes} in flight",
                     rate, "events/s"))
        got, _ = await self.receiver.wait_for(count, within=60)
        if got < count:
            raise SystemExit(f"singles {label}: only {got} of {count} arrived")
        bare = await httpload.load(f"{stack.base}/livez", self.args.mgmt_requests, lanes, {})
        if bare["statuses"] != {"200": self.args.mgmt_requests}:
            raise SystemExit(f"singles {label}: /livez answers {bare['statuses']}")
        bare_rate = float(bare["rate"])  # type: ignore[arg-type]
        self.add(Row("ingest", f"{label}, GET /livez (bare endpoint), {lanes} in flight", bare_rate, "requests/s"))
        ratio = rate / bare_rate
        self.add(Row("ingest", f"{label}, single events / bare endpoint", ratio, "x", f">= {SINGLES_TARGET}",
                     ratio >= SINGLES_TARGET))

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
        self.add(Row("latency", f"{setting}: p99", pct(0.99), "ms", f"<= {LATENCY_P99_TARGET}",
                     pct(0.99) <= LATENCY_P99_TARGET))

    # ------------------------------------------------------------------ 5: management API
    async def mgmt(self, stack: Stack) -> None:
        count = self.args.mgmt_requests
        auth = httpload.auth_header(f"api:{stack.key}")
        listed = await httpload.load(f"{stack.base}/v3/domains/{stack.domain}/webhooks", count, 32, auth)
        bare = await httpload.load(f"{stack.base}/livez", count, 32, {})
        for result, what in ((listed, "webhooks list"), (bare, "/livez")):
            if result["statuses"] != {"200": count}:
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
        for (db, workers, hooks), rate in self.drains.items():
            if (db, workers) not in RATIO_TARGETS:
                continue
            processes, target = RATIO_TARGETS[(db, workers)]
            if processes not in self.baselines:
                continue
            ratio = rate / self.baselines[processes]
            label = stack_label(workers)
            self.add(Row("ratio", f"{label}, x{hooks} / baseline {processes} process{'es' * (processes > 1)}",
                         ratio, "x", f">= {target}" if target else "",
                         (ratio >= target) if target else None))

    # ------------------------------------------------------------------ 6: scale curve
    def scale(self) -> None:
        pg = {workers: measured for (db, workers, hooks), measured in self.cpu.items()
              if db == "postgresql" and hooks == 1 and workers in SCALE_WORKERS}
        for setting, value, unit, target, ok in cpu.scale_rows(pg):
            self.add(Row("scale", setting, value, unit, target, ok))

    # ------------------------------------------------------------------ 7: flat with the backlog
    async def backlog(self) -> None:
        for db, workers in (("sqlite", 0), ("postgresql", 2)):
            if self.args.backlog_db not in ("both", db):
                continue
            if (db, workers, 1) not in self.drains:  # the 20,000 reference of the same stack, in this run
                await self.drain(db, workers, self.args.events, 1)
            for setting, value, unit, target, ok in await backlog.run(
                    db, workers, self.tmp, self.receiver, self.args.pending, self.args.backlog_timeout,
                    (self.args.events, self.drains[(db, workers, 1)])):
                self.add(Row("backlog", setting, value, unit, target, ok))

    # ------------------------------------------------------------------ all
    async def run(self) -> None:
        only = set(self.args.only.split(",")) if self.args.only else None

        def wanted(*names: str) -> bool:
            return only is None or bool(only.intersection(names))

        self.receiver.up()
        try:
            if wanted("baseline", "drain"):
                await self.baseline()
            if wanted("drain", "latency", "ingest", "mgmt"):
                await self.drain("sqlite", 0, self.args.events, 1, extras=("singles", "latency", "mgmt"))
            if wanted("drain"):
                await self.drain("sqlite", 0, self.args.events3, 3)
            for workers in (1, 2):
                if wanted("drain", "scale") or (workers == 1 and wanted("ingest")):
                    await self.drain("postgresql", workers, self.args.events, 1,
                                     extras=("singles",) if workers == 1 and wanted("drain", "ingest") else ())
                if wanted("drain"):
                    await self.drain("postgresql", workers, self.args.events3, 3)
            if wanted("drain"):
                self.ratios()
            if wanted("scale"):
                await self.drain("postgresql", 4, self.args.events, 1)
                self.scale()
            if wanted("backlog", "memory"):
                await self.backlog()
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
        value = (f"{r.value:,.2f}" if r.unit in FINE_UNITS else f"{r.value:,.1f}" if r.value < 1000
                 else f"{r.value:,.0f}")
        verdict = "" if r.ok is None else ("ok" if r.ok else "**missed**")
        lines.append(f"| {r.scenario} | {r.setting} | {value} | {r.unit} | {r.target} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated: baseline,drain,latency,ingest,mgmt,scale,"
                                                   "backlog,retention,intake,replay")
    parser.add_argument("--events", type=int, default=20_000, help="drain with one webhook")
    parser.add_argument("--events3", type=int, default=5_000, help="drain with three webhooks")
    parser.add_argument("--baseline-count", type=int, default=40_000)
    parser.add_argument("--singles", type=int, default=5_000, help="single-event ingest requests per backend")
    parser.add_argument("--latency-seconds", type=float, default=30)
    parser.add_argument("--mgmt-requests", type=int, default=10_000)
    parser.add_argument("--pending", type=int, default=1_000_000, help="backlog: events pending per backend")
    parser.add_argument("--drain-timeout", type=float, default=120)
    parser.add_argument("--backlog-timeout", type=float, default=600, help="backlog: longest drain, seconds")
    parser.add_argument("--sendgrid-events", type=int, default=20_000, help="intake: SendGrid events")
    parser.add_argument("--sendgrid-batch", type=int, default=100, help="intake: SendGrid events per POST")
    parser.add_argument("--mailgun-events", type=int, default=2_000, help="intake: Mailgun events (one per POST)")
    parser.add_argument("--replay-rows", type=int, default=1_000_000, help="failed deliveries the replay takes")
    parser.add_argument("--replay-rate", type=float, default=50, help="live events/s beside the replay")
    parser.add_argument("--replay-seconds", type=float, default=20)
    parser.add_argument("--replay-db", default="postgresql", choices=["postgresql", "sqlite"])
    parser.add_argument("--backlog-db", default="both", choices=["both", "sqlite", "postgresql"],
                        help="backlog: which backends")
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
