"""What every benchmark scenario needs: processes, databases, an account with held webhooks, load.

A *stack* is a fresh database (a temp SQLite file, or a new PostgreSQL database that is dropped
afterwards), an account with one domain and N webhooks pointing at the benchmark receiver, and the
mailhooks processes under test. The webhooks start *held* (disabled), so that a backlog can be
ingested without a dispatcher draining it; :meth:`Stack.release` re-enables them and re-queues the
backlog with the product's own recover call, so that a drain is timed from the moment the work
becomes due, with the dispatchers already up — as the baseline is timed from the moment its
processes are ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("MAILHOOKS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
HELD = "held by the benchmark"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up within {timeout:.0f} s")


def start(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(list(args), env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) so far, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def remove_sqlite(url: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)


async def _pg_admin(statement: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN)
    conn = await asyncpg.connect(host=admin.host, port=admin.port or 5432, user=admin.username,
                                 password=admin.password, database=admin.database)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


class Receiver:
    """``bench/receiver.py`` in its own process: counts what arrives, can go down and come back."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.log = tmp / "receiver.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def up(self) -> None:
        self.proc = start([sys.executable, str(ROOT / "bench" / "receiver.py"), "--port", str(self.port)],
                          dict(os.environ), self.log)
        wait_http(f"http://127.0.0.1:{self.port}/stats")

    def down(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def call(self, path: str) -> bytes:
        async with aiohttp.ClientSession() as session, session.post(self.url(path)) as response:
            return await response.read()

    async def received(self) -> int:
        return int(orjson.loads(await self.call("/stats"))["received"])

    async def wait_for(self, count: int, within: float) -> tuple[int, float]:
        """Poll until ``count`` deliveries arrived; (received, epoch of the last poll)."""
        deadline = time.monotonic() + within
        got = 0
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                got = await self.received()
            if got >= count:
                break
            await asyncio.sleep(0.02)
        return got, time.time()


@dataclass
class Stack:
    """One database, one account, one domain, ``hooks`` held webhooks, and the processes under test."""

    db: str  # "sqlite" | "postgresql"
    tmp: Path
    receiver: Receiver
    hooks: int = 1
    env_extra: dict[str, str] = field(default_factory=dict)
    db_url: str = ""
    pg_name: str | None = None
    key: str = ""
    domain: str = "bench.example"
    guids: list[str] = field(default_factory=list)
    api_port: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "MAILHOOKS_DATABASE_URL": self.db_url, "MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1",
                "MAILHOOKS_RATE_LIMIT": "100000000/minute", **self.env_extra}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def __aenter__(self) -> Stack:
        if self.db == "sqlite":
            self.db_url = f"sqlite:///{self.tmp / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        else:
            from sqlalchemy.engine import make_url

            self.pg_name = f"mailhooks_bench_{uuid.uuid4().hex[:8]}"
            await _pg_admin(f'CREATE DATABASE "{self.pg_name}"')
            self.db_url = make_url(PG_ADMIN).set(database=self.pg_name).render_as_string(hide_password=False)
        await self._provision()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()
        if self.pg_name is not None:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        elif self.db_url:
            remove_sqlite(self.db_url)

    async def _provision(self) -> None:
        from sqlalchemy import update

        from mailhooks.core import accounts
        from mailhooks.core.models import NewWebhook
        from mailhooks.db import schema
        from mailhooks.db.migrate import upgrade_async
        from mailhooks.db.store import Store

        await upgrade_async(self.db_url)
        store = Store(self.db_url)
        try:
            created = await accounts.create_account(store, f"bench{uuid.uuid4().hex[:8]}")
            domain = await accounts.add_domain(store, created.account, self.domain)
            paths = ["/hook"] + [f"/hook{i}" for i in range(2, self.hooks + 1)]
            rows = await store.change_webhooks(add=[
                NewWebhook(created.account.id, domain.id, "delivered", self.receiver.url(p), "mailgun")
                for p in paths])
            async with store.write() as conn:  # held: ingest stores the backlog without anyone draining it
                await conn.execute(update(schema.webhooks).values(disabled_at=time.time(), disabled_reason=HELD))
            self.key, self.guids = created.api_key, [row.guid for row in rows]
        finally:
            await store.close()

    def run(self, *command: str, name: str) -> subprocess.Popen[bytes]:
        """Start ``mailhooks <command>``; an HTTP-serving command gets the stack's API port."""
        args = [str(BIN / "mailhooks"), *command]
        if command[0] in ("serve", "api"):
            self.api_port = self.api_port or free_port()
            args += ["--port", str(self.api_port)]
        proc = start(args, self.env, self.tmp / f"{name}.log")
        self.procs.append(proc)
        if command[0] in ("serve", "api"):
            wait_http(f"{self.base}/healthz")
        return proc

    async def release(self, since: float = 0.0) -> int:
        """Re-enable the held webhooks and re-queue their backlog in one statement; returns how many."""
        async with aiohttp.ClientSession(headers=self.auth) as session:
            for guid in self.guids:
                async with session.post(f"{self.base}/v1/subscriptions/{guid}/enable") as response:
                    assert response.status == 200, await response.text()
            async with session.post(f"{self.base}/v1/domains/{self.domain}/deliveries/recover",
                                    params={"since": str(since)}) as response:
                assert response.status == 202, await response.text()
                return int((await response.json())["requeued"])


def event(i: int, domain: str, run: str) -> dict[str, Any]:
    """A realistic ~1 KB ``delivered`` event (its Mailgun-format delivery is about 1.1 KB)."""
    return {"id": f"{run}-{i}", "domain": domain, "event": "delivered", "recipient": f"user{i}@example.org",
            "message": {"headers": {"message-id": f"{i}@bench.example", "from": "sender@bench.example",
                                    "to": f"user{i}@example.org", "subject": "Benchmark message " + "x" * 300}},
            "delivery-status": {"code": 250, "message": "OK", "attempt-no": 1, "tls": True},
            "envelope": {"sender": "sender@bench.example", "targets": f"user{i}@example.org", "transport": "smtp"}}


async def ingest(stack: Stack, count: int, batch: int, concurrency: int, run: str | None = None) -> float:
    """POST ``count`` events to ``/v1/events`` (``batch`` per request, ``concurrency`` in flight); events/s."""
    run = run or uuid.uuid4().hex[:8]
    if batch == 1:
        bodies = [orjson.dumps(event(i, stack.domain, run)) for i in range(count)]
    else:
        bodies = [orjson.dumps([event(i, stack.domain, run) for i in range(s, min(s + batch, count))])
                  for s in range(0, count, batch)]
    headers = {**stack.auth, "Content-Type": "application/json"}
    todo = iter(bodies)
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def lane() -> None:
            for body in todo:
                async with session.post(f"{stack.base}/v1/events", data=body) as response:
                    await response.read()
                    if response.status != 202:
                        raise SystemExit(f"ingest answered {response.status}: {await response.text()}")

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


def new_tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="mailhooks-bench-"))
