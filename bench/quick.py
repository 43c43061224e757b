"""Quick throughput numbers: events/s ingested and deliveries/s drained, on SQLite or PostgreSQL.

    .venv/bin/python bench/quick.py --db sqlite --events 10000
    .venv/bin/python bench/quick.py --db postgresql --events 10000 --workers 2

1. Ingest: ``mailhooks api`` alone (no dispatcher competing for the CPU); ``--events`` events POSTed to
   ``/v1/events`` in batches of ``--batch`` with 4 requests in flight, then 2,000 single-event requests
   with 16 in flight. Every event fans out to one webhook, so each also writes its delivery row.
2. Drain: the backlog just ingested is delivered to ``bench/receiver.py`` by ``mailhooks serve``
   (``--workers 0``) or by ``--workers`` ``mailhooks worker`` processes; ``deliveries_per_s`` is the
   backlog divided by the time from process start until the receiver has counted them all, and
   ``steady_deliveries_per_s`` the same from the first arrival on (without process start-up).

3. Latency (``--latency-rate R``, ``serve`` only): after the drain, single events at R/s for
   ``--latency-seconds``; p50/p95/p99 from ingest acknowledgement to arrival at the receiver.

Starts and stops everything it needs (fresh database: a temp SQLite file, or a new PostgreSQL database
through ``--pg-admin``); every wait is bounded. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def provision(db_url: str, hook_url: str) -> tuple[str, str]:
    from mailhooks.core import accounts
    from mailhooks.core.models import NewWebhook
    from mailhooks.db.migrate import upgrade_async
    from mailhooks.db.store import Store

    await upgrade_async(db_url)
    store = Store(db_url)
    try:
        created = await accounts.create_account(store, f"bench{uuid.uuid4().hex[:8]}")
        domain = await accounts.add_domain(store, created.account, "bench.example")
        await store.change_webhooks(add=[NewWebhook(created.account.id, domain.id, "delivered", hook_url, "mailgun")])
        return created.api_key, domain.name
    finally:
        await store.close()


def event(i: int, domain: str, run: str) -> dict[str, Any]:
    return {"id": f"{run}-{i}", "domain": domain, "event": "delivered", "recipient": f"user{i}@example.org",
            "message": {"headers": {"message-id": f"{i}@bench.example", "from": "sender@bench.example",
                                    "to": f"user{i}@example.org", "subject": "Benchmark message " + "x" * 300}},
            "delivery-status": {"code": 250, "message": "OK", "attempt-no": 1, "tls": True},
            "envelope": {"sender": "sender@bench.example", "targets": f"user{i}@example.org", "transport": "smtp"}}


async def post_all(url: str, key: str, bodies: list[bytes], concurrency: int) -> float:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    todo = iter(bodies)
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def lane() -> None:
            for body in todo:
                async with session.post(url, data=body) as response:
                    await response.read()
                    if response.status != 202:
                        raise SystemExit(f"ingest answered {response.status}: {await response.text()}")

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return time.perf_counter() - started


async def received(port: int) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/stats") as r:
        return int((await r.json())["received"])


async def latency(url: str, key: str, domain: str, rport: int, rate: float, seconds: float) -> dict[str, Any]:
    """Open loop: one event every 1/rate s; latency = receiver arrival - ingest acknowledgement."""
    wait_http(url.replace("/v1/events", "/healthz"))
    run_id = "lat" + uuid.uuid4().hex[:6]
    acked: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async def one(i: int) -> None:
            async with session.post(url, data=orjson.dumps(event(i, domain, run_id))) as response:
                await response.read()
                acked[f"{run_id}-{i}"] = time.time()

        tasks = []
        started = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        await asyncio.sleep(2)
        async with session.get(f"http://127.0.0.1:{rport}/arrivals") as response:
            arrivals = orjson.loads(await response.read())
    lat = sorted(max(0.0, arrivals[k] - t) * 1000 for k, t in acked.items() if k in arrivals)
    if not lat:
        return {"latency_missing": len(acked)}

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1)

    return {"latency_rate": rate, "latency_ms_p50": pct(0.5), "latency_ms_p95": pct(0.95),
            "latency_ms_p99": pct(0.99), "latency_missing": len(acked) - len(lat)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="mailhooks-bench-"))
    pg_name = None
    if args.db == "sqlite":
        db_url = f"sqlite:///{tmp / 'bench.db'}"
    else:
        import asyncpg
        from sqlalchemy.engine import make_url

        pg_name = f"mailhooks_bench_{uuid.uuid4().hex[:8]}"
        admin = make_url(args.pg_admin)
        conn = await asyncpg.connect(host=admin.host, port=admin.port or 5432, user=admin.username,
                                     password=admin.password, database=admin.database)
        await conn.execute(f'CREATE DATABASE "{pg_name}"')
        await conn.close()
        db_url = admin.set(database=pg_name).render_as_string(hide_password=False)
    rport, aport = free_port(), free_port()
    env = {**os.environ, "MAILHOOKS_DATABASE_URL": db_url, "MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1",
           "MAILHOOKS_RATE_LIMIT": "10000000/minute"}
    procs: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {"db": args.db, "events": args.events, "workers": args.workers}
    try:
        receiver = start([sys.executable, str(ROOT / "bench" / "receiver.py"), "--port", str(rport)]
                         + (["--track"] if args.latency_rate else []), env, tmp / "receiver.log")
        procs.append(receiver)
        key, domain = await provision(db_url, f"http://127.0.0.1:{rport}/hook")
        api = start([str(BIN / "mailhooks"), "api", "--port", str(aport)], env, tmp / "api.log")
        procs.append(api)
        wait_http(f"http://127.0.0.1:{aport}/healthz")
        wait_http(f"http://127.0.0.1:{rport}/stats")
        run_id = uuid.uuid4().hex[:6]
        url = f"http://127.0.0.1:{aport}/v1/events"

        batches = [orjson.dumps([event(i, domain, run_id) for i in range(s, min(s + args.batch, args.events))])
                   for s in range(0, args.events, args.batch)]
        seconds = await post_all(url, key, batches, 4)
        result["ingest_batched_per_s"] = round(args.events / seconds)
        singles = [orjson.dumps(event(i, domain, run_id + "s")) for i in range(args.single)]
        seconds = await post_all(url, key, singles, 16)
        result["ingest_single_per_s"] = round(args.single / seconds)
        backlog = args.events + args.single

        stop(api)
        procs.remove(api)
        started = time.perf_counter()
        if args.workers == 0:
            procs.append(start([str(BIN / "mailhooks"), "serve", "--port", str(aport)], env, tmp / "serve.log"))
        else:
            procs.extend(start([str(BIN / "mailhooks"), "worker"], env, tmp / f"worker{i}.log")
                         for i in range(args.workers))
        deadline = time.monotonic() + args.timeout
        count = 0
        first: tuple[float, int] | None = None  # (when, count) at the first arrival seen
        while time.monotonic() < deadline:
            with_errors = await asyncio.gather(received(rport), return_exceptions=True)
            count = with_errors[0] if isinstance(with_errors[0], int) else count
            if count and first is None:
                first = (time.perf_counter(), count)
            if count >= backlog:
                break
            await asyncio.sleep(0.02)
        ended = time.perf_counter()
        seconds = ended - started
        result["drained"] = count
        result["drain_seconds_incl_startup"] = round(seconds, 2)
        result["deliveries_per_s"] = round(count / seconds)
        if first is not None and ended > first[0]:
            # from the first arrival on: what the dispatcher sustains once the process is up
            result["steady_deliveries_per_s"] = round((count - first[1]) / (ended - first[0]))
        if args.latency_rate and args.workers == 0:
            result.update(await latency(f"http://127.0.0.1:{aport}/v1/events", key, domain, rport,
                                        args.latency_rate, args.latency_seconds))
        result["logs"] = str(tmp)
        return result
    finally:
        for proc in reversed(procs):
            stop(proc)
        if pg_name is not None:
            import asyncpg
            from sqlalchemy.engine import make_url

            admin = make_url(args.pg_admin)
            conn = await asyncpg.connect(host=admin.host, port=admin.port or 5432, user=admin.username,
                                         password=admin.password, database=admin.database)
            await conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--single", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=0, help="0 = mailhooks serve; N = N mailhooks workers")
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--latency-rate", type=float, default=0,
                        help="after the drain (serve only): ingest single events at this rate, report p50/p95/p99")
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--pg-admin", default=os.environ.get("MAILHOOKS_TEST_PG",
                                                             "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    print(json.dumps(uvloop.run(run(args))))


if __name__ == "__main__":
    main()
