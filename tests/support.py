"""Helpers for tests: server subprocesses, database setup, account provisioning, local receivers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from multidict import CIMultiDict
from sqlalchemy.engine import make_url

from mailhooks.core import accounts as core_accounts
from mailhooks.db.migrate import upgrade
from mailhooks.db.store import Store
from tests.faults.loopback import ServerThread, free_port

ROOT = Path(__file__).resolve().parent.parent
MAILHOOKS = str(Path(sys.executable).with_name("mailhooks"))



def pg_available(admin_url: str) -> bool:
    url = make_url(admin_url)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=2):
            return True
    except OSError:
        return False


def redis_available(redis_url: str) -> bool:
    url = make_url(redis_url.replace("redis://", "redis+x://", 1)) if "://" in redis_url else None
    host = (url.host if url else None) or "127.0.0.1"
    port = (url.port if url else None) or 6379
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


async def _pg_admin(admin_url: str, statement: str) -> None:
    import asyncpg

    url = make_url(admin_url)
    conn = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username or "postgres",
                                 password=url.password, database=url.database or "postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def create_pg_database(admin_url: str, name: str) -> str:
    asyncio.run(_pg_admin(admin_url, f'CREATE DATABASE "{name}"'))
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(admin_url: str, name: str) -> None:
    asyncio.run(_pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class Tenant:
    username: str
    api_key: str
    account_guid: str
    signing_key: str
    domains: dict[str, str] = field(default_factory=dict)  # name -> secret
    domain_guids: dict[str, str] = field(default_factory=dict)  # name -> guid

    @property
    def domain(self) -> str:
        return next(iter(self.domains))


class Provisioner:
    """Makes accounts and domains in the database a server is using."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def tenant(self, domains: int = 1, prefix: str = "t") -> Tenant:
        async def work() -> Tenant:
            store = Store(self.db_url)
            try:
                suffix = uuid.uuid4().hex[:10]
                created = await core_accounts.create_account(store, f"{prefix}{suffix}")
                tenant = Tenant(created.account.username, created.api_key, created.account.guid,
                                created.account.signing_key)
                for i in range(domains):
                    dom = await core_accounts.add_domain(store, created.account, f"d{i}-{suffix}.example")
                    tenant.domains[dom.name] = dom.secret
                    tenant.domain_guids[dom.name] = dom.guid
                return tenant
            finally:
                await store.close()

        return asyncio.run(work())


class ServerProcess:
    """``mailhooks <command>`` as a real subprocess on 127.0.0.1."""

    def __init__(self, db_url: str, log_dir: Path, env: dict[str, str] | None = None, command: str = "serve",
                 port: int | None = None, argv_prefix: list[str] | None = None) -> None:
        """``argv_prefix`` wraps the command, e.g. ``StubDNS.namespace_argv()`` (tests/faults/dns.py)."""
        self.db_url = db_url
        self.argv_prefix = list(argv_prefix or ())
        self.command = command
        self.port = port or free_port()
        self.log_path = log_dir / f"{command}-{self.port}.log"
        # Tests send wrong keys on purpose, all from 127.0.0.1: the failed-sign-in throttle stays out of
        # their way unless a test sets it (tests/test_ratelimit.py does).
        self.env = {**os.environ, "MAILHOOKS_DATABASE_URL": db_url, "MAILHOOKS_AUTH_FAILURE_LIMIT": "1000000/minute",
                    **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, migrate: bool = True) -> None:
        if migrate:
            upgrade(self.db_url)
        args = [*self.argv_prefix, MAILHOOKS, self.command]
        if self.command in ("serve", "api"):
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        if self.command in ("serve", "api"):
            try:
                self.wait_ready(timeout)
            except RuntimeError:  # a module fixture that fails never reaches its stop(): no server left behind
                self.stop()
                raise

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"mailhooks exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code in (200, 503):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"mailhooks did not become ready:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------- a real webhook receiver


@dataclass
class Received:
    path: str
    headers: CIMultiDict[str]  # case-insensitive, as HTTP header names are (the sender sends them lower-case)
    body: bytes
    at: float


class Receiver(ServerThread):
    """An aiohttp server on 127.0.0.1 in a background thread, recording every POST.

    ``script(path, [500, 500, 200])`` answers those statuses in turn (then the last one forever);
    ``hang(path)`` never answers (until the test ends); ``slow(path, seconds)`` answers after that long,
    and ``peak_in_flight[path]`` is the most requests to ``path`` it ever held at once. Other paths
    answer 200.
    """

    def __init__(self) -> None:
        import threading

        super().__init__(name="receiver")
        self.requests: list[Received] = []
        self.scripts: dict[str, list[int]] = {}
        self.hanging: set[str] = set()
        self.delays: dict[str, float] = {}
        self.in_flight: Counter[str] = Counter()
        self.peak_in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, statuses: list[int]) -> None:
        self.scripts[path] = list(statuses)

    def hang(self, path: str) -> None:
        self.hanging.add(path)

    def slow(self, path: str, seconds: float) -> None:
        self.delays[path] = seconds

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.on(path)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{path}: expected {count} requests, got {len(self.on(path))}")

    def start(self) -> Receiver:
        super().start()
        return self

    async def _open(self) -> Callable[[], Awaitable[None]]:
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            with self._lock:
                self.requests.append(Received(request.path, CIMultiDict(request.headers), body, time.time()))
                script = self.scripts.get(request.path)
                status = 200
                if script:
                    status = script.pop(0) if len(script) > 1 else script[0]
                self.in_flight[request.path] += 1
                self.peak_in_flight[request.path] = max(self.peak_in_flight[request.path],
                                                        self.in_flight[request.path])
            try:
                if request.path in self.hanging:
                    await asyncio.sleep(3600)
                await asyncio.sleep(self.delays.get(request.path, 0))
            finally:
                with self._lock:
                    self.in_flight[request.path] -= 1
            return web.Response(status=status, text='{"success": true}', content_type="application/json")

        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        return runner.cleanup
