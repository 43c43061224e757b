"""Single-event ingest while delivering, next to the bare ``GET /livez`` of the same server, with CPU.

    cd bench && ../.venv/bin/python singles.py --db sqlite --count 2000 --rounds 3 [--bin OTHER/.venv/bin ...]

One stack per ``--bin`` (SQLite ``mailhooks serve``; PostgreSQL ``mailhooks api`` + one ``mailhooks worker``),
the webhook released so every event is delivered as it arrives. Each round, for each stack in turn (A, B, A,
B, …): ``--count`` single events POSTed with ``--concurrency`` in flight, then the same count of ``GET
/livez``; then it waits until the receiver has every event. Per round it prints events/s, /livez requests/s,
their ratio, the ack p50/p99, and the CPU (utime + stime from ``/proc``) of the API process and of the
worker per 1,000 events, over the ingest window and until the last delivery arrived. A line of medians per
stack ends the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import harness
import httpload
import orjson
import uvloop
from harness import Receiver, Stack, event, new_tmp

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


_PROVISION = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from harness import Stack
class AtReceiver:
    def url(self, path): return sys.argv[3] + path
stack = Stack("sqlite", None, AtReceiver())
stack.db_url = sys.argv[2]
asyncio.run(stack._provision())
print(json.dumps([stack.key, stack.guids]))
"""


class ProvisionedBy(Stack):
    """A stack whose database is migrated and provisioned by the code under test (its own migrations)."""

    bin_dir: Path = harness.BIN

    async def _provision(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            str(self.bin_dir / "python"), "-c", _PROVISION, str(harness.ROOT / "bench"), self.db_url,
            self.receiver.url(""), stdout=subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        if proc.returncode != 0:
            raise SystemExit(f"provisioning with {self.bin_dir} failed")
        self.key, self.guids = orjson.loads(out.splitlines()[-1])


class Subject:
    """One stack started from one ``mailhooks`` binary directory."""

    def __init__(self, bin_dir: Path, stack: Stack) -> None:
        self.bin_dir = bin_dir
        self.stack = stack
        self.api_pid = 0
        self.worker_pid = 0

    def start(self) -> None:
        harness.BIN = self.bin_dir  # Stack.run starts BIN/mailhooks
        if self.stack.db == "sqlite":
            self.api_pid = self.stack.run("serve", name=f"serve-{id(self)}").pid
        else:
            self.api_pid = self.stack.run("api", name=f"api-{id(self)}").pid
            self.worker_pid = self.stack.run("worker", name=f"worker-{id(self)}").pid

    def cpu(self) -> tuple[float, float]:
        return cpu_seconds(self.api_pid), cpu_seconds(self.worker_pid) if self.worker_pid else 0.0


async def singles(stack: Stack, count: int, concurrency: int) -> tuple[float, list[float]]:
    run = uuid.uuid4().hex[:8]
    bodies = iter([orjson.dumps(event(i, stack.domain, run)) for i in range(count)])
    headers = {**stack.auth, "Content-Type": "application/json"}
    latencies: list[float] = []
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def lane() -> None:
            for body in bodies:
                sent = time.perf_counter()
                async with session.post(f"{stack.base}/v1/events", data=body) as response:
                    await response.read()
                    if response.status != 202:
                        raise SystemExit(f"ingest answered {response.status}: {await response.text()}")
                latencies.append((time.perf_counter() - sent) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return count / (time.perf_counter() - started), sorted(latencies)


async def one_round(subject: Subject, receiver: Receiver, args: argparse.Namespace) -> dict[str, float]:
    stack = subject.stack
    await receiver.call("/reset")
    api0, worker0 = subject.cpu()
    spies = [await asyncio.create_subprocess_exec(  # --gil: samples of the thread holding it, CPU time
        str(harness.ROOT / ".venv" / "bin" / "py-spy"), "record", "-f", "raw", "-r", "200", "--nonblocking", "--gil",
        "-o", f"{args.profile}/{name}-{pid}.txt", "-p", str(pid), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, pid in (("api", subject.api_pid), ("worker", subject.worker_pid)) if args.profile and pid]
    rate, lat = await singles(stack, args.count, args.concurrency)
    api1, worker1 = subject.cpu()
    for spy in spies:
        spy.send_signal(signal.SIGINT)
        await asyncio.wait_for(spy.wait(), 30)
    got, _ = await receiver.wait_for(args.count, within=120)
    api2, worker2 = subject.cpu()
    if got < args.count:
        raise SystemExit(f"only {got} of {args.count} delivered")
    bare = await httpload.load(f"{stack.base}/livez", args.count, args.concurrency, {})
    api3, _ = subject.cpu()
    per = 1000 / args.count
    return {"events/s": rate, "livez/s": float(bare["rate"]),  # type: ignore[arg-type]
            "ratio": rate / float(bare["rate"]),  # type: ignore[arg-type]
            "p50 ms": lat[len(lat) // 2], "p99 ms": lat[int(len(lat) * 0.99)],
            "api cpu/1k (ingest)": (api1 - api0) * per, "api cpu/1k (to delivered)": (api2 - api0) * per,
            "worker cpu/1k (to delivered)": (worker2 - worker0) * per, "api cpu/1k livez": (api3 - api2) * per}


async def main(args: argparse.Namespace) -> None:
    tmp = new_tmp()
    receiver = Receiver(tmp)
    receiver.up()
    results: dict[str, list[dict[str, float]]] = {}
    try:
        async with AsyncExitStack() as stacks:
            subjects = []
            for bin_dir in args.bin:
                provisioned = ProvisionedBy(args.db, tmp, receiver)
                provisioned.bin_dir = bin_dir
                stack = await stacks.enter_async_context(provisioned)
                subject = Subject(provisioned.bin_dir, stack)
                subject.start()
                await stack.release()
                await singles(stack, 200, args.concurrency)  # warm: connections, caches, JIT of the driver
                await receiver.wait_for(200, within=60)
                subjects.append(subject)
            for number in range(args.rounds):
                for subject in subjects:
                    result = await one_round(subject, receiver, args)
                    results.setdefault(str(subject.bin_dir), []).append(result)
                    print(f"round {number} {subject.bin_dir}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.items()),
                          flush=True)
    finally:
        receiver.down()
    for name, rows in results.items():
        medians: dict[str, Any] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"median {args.db} {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in medians.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", help="a directory: py-spy records each round's singles there")
    parser.add_argument("--bin", action="append", help="a .venv/bin holding mailhooks (repeat for A/B)")
    parsed = parser.parse_args()
    parsed.bin = [Path(os.path.abspath(b)) for b in parsed.bin or [str(harness.BIN)]]
    uvloop.run(main(parsed))
