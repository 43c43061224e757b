"""ASGI servers compared: the mailhooks API (``mailhooks api``: no dispatcher) under each, one process each.

    python bench/servers.py [--db sqlite,postgresql] [--servers uvicorn,granian,...] [--rounds 3]
                            [--concurrency 16,32] [--out FILE.jsonl]
    python bench/servers.py --table-from FILE.jsonl      # the median table of an earlier run

For each backend, one database is provisioned like ``harness.Stack`` does (an account, a domain, one *held*
webhook: ingest stores deliveries and nobody drains them). Then, round after round, each server in turn
(the order rotates every round, so that drift on the shared machine and the growing table fall on every
server alike) is started on that database, warmed, and driven closed-loop with

- ``livez``: ``GET /livez`` (the bare endpoint: the server's own cost, almost no app work);
- ``list``: ``GET /v3/domains/{d}/webhooks`` with Basic auth (a management read);
- ``ingest``: ``POST /v1/events``, one ~1 KB event per request, each event new (as the drain's pre-ingest).

Each cell reports requests/s and the **CPU seconds per 1,000 requests of the server's process tree**
(utime+stime from /proc of the server process and its children: granian and hypercorn serve from a child),
which the other tenants of this 2-core machine disturb much less than the rate. The client's own CPU per
1,000 requests is reported too: where client + server CPU per request is near 2 cores' worth, the rate is
bounded by the machine, not the server. Medians over rounds are printed as a Markdown table.

The servers (what each command is, see ``SERVERS``): ``uvicorn`` is the product as run (``mailhooks api``:
httptools with the request-head deadline, uvloop); ``uvicorn-plain`` is stock uvicorn httptools + uvloop
(the price of the head deadline); ``granian`` (Rust, hyper) ``--interface asgi --loop uvloop --http 1``;
``hypercorn`` with its uvloop worker; ``socketify`` (uWebSockets) ASGI. The candidates are not the project's
dependencies: ``pip install granian hypercorn socketify`` into the venv first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
from harness import BIN, ROOT, Receiver, Stack, event, free_port, new_tmp, start, stop, wait_http
from httpload import auth_header

BENCH = Path(__file__).resolve().parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def build_app() -> Any:
    """The ASGI app as ``mailhooks api`` builds it (a factory, so each server builds it in its own worker)."""
    from mailhooks.config import Settings
    from mailhooks.logs import configure_logging
    from mailhooks.services import web_app

    configure_logging()
    return web_app(Settings.from_env(), dispatcher=False)


def __getattr__(name: str) -> Any:
    """``servers:app`` for servers that take an app object, not a factory (built on first access)."""
    if name == "app":
        globals()["app"] = built = build_app()
        return built
    raise AttributeError(name)


def _commands(port: int) -> dict[str, list[str]]:
    py, target = sys.executable, "servers:build_app"
    return {
        "uvicorn": [str(BIN / "mailhooks"), "api", "--port", str(port)],
        "uvicorn-plain": [py, "-m", "uvicorn", "--factory", target, "--port", str(port), "--loop", "uvloop",
                          "--http", "httptools", "--log-level", "warning", "--no-access-log"],
        "granian": [py, "-m", "granian", "--interface", "asgi", "--factory", "--loop", "uvloop", "--http", "1",
                    "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning",
                    "--no-access-log", target],
        "hypercorn": [py, "-m", "hypercorn", "-k", "uvloop", "--bind", f"127.0.0.1:{port}", "--log-level",
                      "warning", "servers:build_app()"],
        "socketify": [py, "-m", "socketify", "servers:app", "--port", str(port), "--interface", "asgi",
                      "--lifespan", "on", "--disable-listen-log", "true"],
    }


SERVERS = tuple(_commands(0))
MODULES = {"uvicorn": "uvicorn", "uvicorn-plain": "uvicorn", "granian": "granian", "hypercorn": "hypercorn",
           "socketify": "socketify"}


def require(servers: list[str]) -> None:
    import importlib.util

    missing = [name for name in servers if importlib.util.find_spec(MODULES[name]) is None]
    if missing:
        raise SystemExit(f"not installed: {', '.join(missing)} (pip install {' '.join(missing)})")


def _children(pid: int) -> list[int]:
    """``pid`` and its descendants now."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its descendants (all their threads), in seconds."""
    ticks = 0
    for member in _children(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / CLOCK_TICKS


def client_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def drive(url: str, method: str, bodies: Iterator[bytes | None], concurrency: int,
                headers: dict[str, str], expect: int) -> tuple[int, float]:
    """Send every body (``None``: no body) closed-loop, ``concurrency`` in flight; (count, seconds)."""
    done = 0
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def lane() -> None:
            nonlocal done
            for body in bodies:
                async with session.request(method, url, data=body) as response:
                    await response.read()
                    if response.status != expect:
                        raise SystemExit(f"{method} {url}: {response.status} {await response.text()}")
                    done += 1

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return done, time.perf_counter() - started


Workload = Callable[[int], tuple[str, str, Iterator[bytes | None], dict[str, str], int]]


def workloads(stack: Stack, base: str) -> dict[str, Workload]:
    basic = auth_header(f"api:{stack.key}")
    bearer = {**stack.auth, "Content-Type": "application/json"}

    def livez(count: int) -> tuple[str, str, Iterator[bytes | None], dict[str, str], int]:
        return "GET", f"{base}/livez", iter([None] * count), {}, 200

    def listing(count: int) -> tuple[str, str, Iterator[bytes | None], dict[str, str], int]:
        return "GET", f"{base}/v3/domains/{stack.domain}/webhooks", iter([None] * count), basic, 200

    def ingest(count: int) -> tuple[str, str, Iterator[bytes | None], dict[str, str], int]:
        run = uuid.uuid4().hex[:8]
        bodies = iter([orjson.dumps(event(i, stack.domain, run)) for i in range(count)])
        return "POST", f"{base}/v1/events", bodies, bearer, 202

    return {"livez": livez, "list": listing, "ingest": ingest}


async def measure_server(name: str, stack: Stack, counts: dict[str, int], concurrencies: list[int],
                         tmp: Path, db: str, round_no: int) -> list[dict[str, Any]]:
    port = free_port()
    env = {**stack.env, "PYTHONPATH": os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")])}
    proc = start(_commands(port)[name], env, tmp / f"{name}.log")
    rows: list[dict[str, Any]] = []
    try:
        base = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_http, f"{base}/livez", 60)
        loads = workloads(stack, base)
        for load in loads.values():  # warm: imports, caches, the pool's connections
            method, url, bodies, headers, expect = load(200)
            await drive(url, method, bodies, 16, headers, expect)
        for what, load in loads.items():
            for concurrency in concurrencies:
                method, url, bodies, headers, expect = load(counts[what])
                server_before, client_before = tree_cpu_seconds(proc.pid), client_cpu_seconds()
                done, seconds = await drive(url, method, bodies, concurrency, headers, expect)
                server_cpu = tree_cpu_seconds(proc.pid) - server_before
                client_cpu = client_cpu_seconds() - client_before
                rows.append({"db": db, "round": round_no, "server": name, "load": what, "concurrency": concurrency,
                             "requests": done, "rate": done / seconds, "server_cpu_ms_per_1k": server_cpu * 1e6 / done,
                             "client_cpu_ms_per_1k": client_cpu * 1e6 / done})
    finally:
        stop(proc)
    if proc.returncode not in (0, -15):
        print(f"  {name} exited {proc.returncode}: see {tmp / f'{name}.log'}", file=sys.stderr)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    keys = sorted({(r["db"], r["load"], r["concurrency"], r["server"]) for r in rows},
                  key=lambda k: (k[0], ["livez", "list", "ingest"].index(k[1]), k[2], SERVERS.index(k[3])))
    lines = ["| db | load | conc | server | requests/s | server CPU ms / 1k req | vs uvicorn | client CPU ms / 1k |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    medians: dict[tuple[Any, ...], tuple[float, float, float]] = {}
    for key in keys:
        cell = [r for r in rows if (r["db"], r["load"], r["concurrency"], r["server"]) == key]
        medians[key] = (statistics.median(r["rate"] for r in cell),
                        statistics.median(r["server_cpu_ms_per_1k"] for r in cell),
                        statistics.median(r["client_cpu_ms_per_1k"] for r in cell))
    for key in keys:
        rate, cpu, client = medians[key]
        reference = medians.get((*key[:3], "uvicorn"))
        versus = f"{cpu / reference[1]:.2f}x" if reference else "-"
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {rate:,.0f} | {cpu:,.0f} | {versus} | "
                     f"{client:,.0f} |")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    tmp = new_tmp()
    receiver = Receiver(tmp)  # the held webhook's URL: never called, but it must be a real address
    counts = {"livez": args.livez, "list": args.list, "ingest": args.ingest}
    servers = args.servers.split(",")
    require(servers)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    rows: list[dict[str, Any]] = []
    out = Path(args.out) if args.out else None
    for db in args.db.split(","):
        async with Stack(db, tmp, receiver) as stack:
            for round_no in range(args.rounds):
                order = servers[round_no % len(servers):] + servers[:round_no % len(servers)]
                for name in order:
                    got = await measure_server(name, stack, counts, concurrencies, tmp, db, round_no)
                    rows.extend(got)
                    for row in got:
                        print(orjson.dumps(row).decode(), file=sys.stderr)
                        if out is not None:
                            with out.open("ab") as sink:
                                sink.write(orjson.dumps(row) + b"\n")
    print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="16,32")
    parser.add_argument("--livez", type=int, default=6000, help="requests per livez cell")
    parser.add_argument("--list", type=int, default=3000, help="requests per list cell")
    parser.add_argument("--ingest", type=int, default=2000, help="requests per ingest cell")
    parser.add_argument("--out", help="append each measurement as a JSON line to this file")
    parser.add_argument("--table-from", help="only print the median table of the JSON lines in this file")
    parsed = parser.parse_args()
    if parsed.table_from:
        print(table([orjson.loads(line) for line in Path(parsed.table_from).read_bytes().splitlines()]))
        raise SystemExit(0)
    os.chdir(ROOT)
    uvloop.run(main(parsed))
