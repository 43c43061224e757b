"""The pieces every chaos scenario stands on: a world of real processes, a steady flow of events, a
receiver that counts arrivals per event, and the tally."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tests.faults.loopback import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("MAILHOOKS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DRAIN_WITHIN = 90.0  # seconds after the flow ends for every acknowledged event to arrive
# Short enough that a fault of a few seconds is over within the schedule; long enough to outlast it.
RETRY_SCHEDULE = "1,1,2,2,3,5,5,10,10,15,30"


def severity(answer: int | str) -> int:
    """How bad an answer is for a client: a dropped connection is worse than any status code, an
    unexpected 5xx worse than a 503 (which says "come back later" with Retry-After)."""
    if isinstance(answer, str):
        return 10_000
    if answer >= 500:
        return 500 if answer == 503 else 1000 + answer
    if answer == 429:
        return 300
    if answer >= 400:
        return 200
    return 0


class CountingReceiver:
    """A webhook receiver in the runner's own loop: counts arrivals per event id, and can go down and
    come back on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: Counter[str] = Counter()
        self.last_arrival = 0.0
        self._runner: web.AppRunner | None = None

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        data = orjson.loads(await request.read())
        event = data.get("event-data") or data
        self.arrivals[str(event.get("id"))] += 1
        self.last_arrival = time.monotonic()
        return web.Response(text="ok")

    async def up(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass
class Tally:
    scenario: str
    backend: str
    fault: str
    acknowledged: int
    delivered: int
    duplicated: int
    lost: int
    worst: int | str
    answers: Counter[int | str]
    slowest: float
    drained_in: float | None
    unrecorded: int  # the account's deliveries still pending or delivering at the end

    def row(self) -> tuple[object, ...]:
        drained = f"{self.drained_in:.1f} s" if self.drained_in is not None else "not drained"
        return (self.scenario, self.backend, self.fault, self.acknowledged, self.delivered, self.duplicated,
                self.lost, self.unrecorded, self.worst, f"{self.slowest * 1000:.0f} ms", drained)

    def summary(self) -> str:
        codes = " ".join(f"{code}x{n}" for code, n in sorted(self.answers.items(), key=lambda kv: str(kv[0])))
        return (f"acknowledged {self.acknowledged}, delivered {self.delivered}, duplicated {self.duplicated}, "
                f"lost {self.lost}, unrecorded {self.unrecorded}; answers {codes}")


@dataclass
class Tenant:
    username: str
    key: str
    domain: str


@dataclass
class World:
    """One scenario's database, account, domain, webhook, receiver and ``mailhooks`` processes."""

    name: str
    backend: str  # "sqlite" | "postgresql" (the shared server) | "own postgresql" (a cluster of its own)
    rate: float = 100.0
    phase: float = 5.0
    lease_seconds: float = 5.0
    env_extra: dict[str, str] = field(default_factory=dict)
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mailhooks-chaos-")))
    receiver: CountingReceiver = field(default_factory=CountingReceiver)
    db_url: str = ""
    tenant: Tenant | None = None
    neighbours: list[Tenant] = field(default_factory=list)
    api_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    workers: list[str] = field(default_factory=list)
    argv_prefix: list[str] = field(default_factory=list)  # e.g. a private namespace with our own resolver
    hook_host: str = "127.0.0.1"  # the host name in the webhook's URL
    cluster: Any = None  # tests.faults.pgcluster.PgCluster, for "own postgresql"
    _pg_name: str | None = None
    _on_exit: list[Callable[[], object]] = field(default_factory=list)

    def on_exit(self, undo: Callable[[], object]) -> None:
        """Undo a staged fault (stop a stub resolver, a cluster...) once the processes are stopped."""
        self._on_exit.append(undo)

    @property
    def fault_at(self) -> float:
        return self.phase

    @property
    def fault_for(self) -> float:
        return self.phase

    @property
    def after(self) -> float:
        return self.phase

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "MAILHOOKS_DATABASE_URL": self.db_url, "MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1",
                "MAILHOOKS_RETRY_SCHEDULE": RETRY_SCHEDULE, "MAILHOOKS_LEASE_SECONDS": f"{self.lease_seconds:g}",
                "MAILHOOKS_POLL_INTERVAL": "0.2", "MAILHOOKS_RATE_LIMIT": "1000000/minute",
                "MAILHOOKS_INGEST_RATE_LIMIT": "1000000/minute", **self.env_extra}

    # ------------------------------------------------------------------ set-up and tear-down
    async def __aenter__(self) -> World:
        if self.backend == "sqlite":
            self.db_url = f"sqlite:///{self.tmp / 'chaos.db'}"
        elif self.backend == "own postgresql":
            from tests.faults.pgcluster import PgCluster

            self.cluster = await asyncio.to_thread(PgCluster().start)
            self.on_exit(self.cluster.destroy)
            self.db_url = await asyncio.to_thread(self.cluster.create_database, "chaos")
        else:
            self._pg_name = f"mailhooks_chaos_{uuid.uuid4().hex[:8]}"
            await _pg_admin(f'CREATE DATABASE "{self._pg_name}"')
            self.db_url = _pg_url(self._pg_name)
        self.cli("db", "upgrade")
        self.tenant = self.new_tenant("chaos")
        await self.receiver.up()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)
        await self.receiver.down()
        for undo in reversed(self._on_exit):
            undo()
        if self._pg_name is not None:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{self._pg_name}" WITH (FORCE)')
        if not os.environ.get("MAILHOOKS_CHAOS_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def cli(self, *args: str) -> Any:
        """``mailhooks ARGS --json`` (or without ``--json`` for commands that print nothing useful)."""
        done = subprocess.run([str(BIN / "mailhooks"), *args], env=self.env, capture_output=True, cwd=ROOT,
                              timeout=60, check=False)
        if done.returncode != 0:
            raise SystemExit(f"mailhooks {' '.join(args)} failed: {done.stderr.decode(errors='replace')}")
        return json.loads(done.stdout) if "--json" in args else None

    def new_tenant(self, prefix: str) -> Tenant:
        username = f"{prefix}{uuid.uuid4().hex[:6]}"
        key = self.cli("accounts", "create", username, "--json")["api_key"]
        domain = f"{username}.example"
        self.cli("domains", "add", domain, "--account", username, "--json")
        return Tenant(username, key, domain)

    def start(self, name: str, *command: str) -> subprocess.Popen[bytes]:
        args = [*self.argv_prefix, str(BIN / "mailhooks"), *command]
        if command[0] in ("serve", "api"):
            args += ["--host", "127.0.0.1", "--port", str(self.api_port)]
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs[name] = proc
        return proc

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    async def wait_http(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"{self.base}/livez") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise SystemExit(f"{self.name}: the API did not come up within {within:.0f} s (logs in {self.tmp})")

    async def subscribe(self, tenant: Tenant, url: str) -> None:
        """A ``delivered`` webhook through the Mailgun dialect, as a user would make it (a second URL is
        added to the type with PUT)."""
        auth = aiohttp.BasicAuth("api", tenant.key)
        collection = f"{self.base}/v3/domains/{tenant.domain}/webhooks"
        async with aiohttp.ClientSession(auth=auth) as session:
            async with session.get(f"{collection}/delivered") as resp:
                urls = (await resp.json())["webhook"]["urls"] if resp.status == 200 else []
            if urls:
                request = session.put(f"{collection}/delivered", data=[("url", u) for u in [*urls, url]])
            else:
                request = session.post(collection, data={"id": "delivered", "url": url})
            async with request as resp:
                if resp.status != 200:
                    raise SystemExit(f"subscribe answered {resp.status}: {await resp.text()}")

    async def serve(self) -> None:
        self.start("serve", "serve")
        await self.wait_http()
        assert self.tenant is not None
        await self.subscribe(self.tenant, self.receiver.url(host=self.hook_host))

    async def api_and_workers(self, workers: int) -> None:
        self.start("api", "api")
        await self.wait_http()
        for _ in range(workers):
            self.start_worker()
        assert self.tenant is not None
        await self.subscribe(self.tenant, self.receiver.url())

    def start_worker(self) -> None:
        name = f"worker{len(self.workers) + 1}"
        self.workers.append(name)
        self.start(name, "worker")

    def kill_worker(self, index: int) -> None:
        proc = self.procs.pop(self.workers[index])
        proc.kill()
        proc.wait()

    async def add_neighbour(self, *urls: str) -> None:
        """Another account, subscribed to ``urls`` (up to 3), whose events flow beside the counted ones."""
        neighbour = self.new_tenant("neighbour")
        for url in urls:
            await self.subscribe(neighbour, url)
        self.neighbours.append(neighbour)

    # ------------------------------------------------------------------ the end
    async def unrecorded(self) -> int:
        """The account's deliveries whose outcome is not recorded yet (``pending`` or ``delivering``),
        read through the native API as an operator would; -1 while the API does not answer."""
        assert self.tenant is not None
        count = 0
        try:
            async with aiohttp.ClientSession(auth=aiohttp.BasicAuth("api", self.tenant.key),
                                             timeout=aiohttp.ClientTimeout(total=15)) as session:
                for status in ("pending", "delivering"):
                    cursor = ""
                    while True:
                        async with session.get(f"{self.base}/v1/deliveries", params={
                                "status": status, "limit": "1000", "cursor": cursor}) as response:
                            if response.status != 200:
                                return -1
                            page = await response.json()
                        count += len(page["items"])
                        cursor = page["next_cursor"] or ""
                        if not cursor:
                            break
        except (aiohttp.ClientError, OSError, TimeoutError):
            return -1
        return count

    async def settle(self, flow: Flow, fault: str) -> Tally:
        """Wait until every acknowledged event arrived (or ``DRAIN_WITHIN`` passed), then count."""
        await flow.finish()
        ended = time.monotonic()
        deadline = ended + DRAIN_WITHIN
        while time.monotonic() < deadline and not flow.acknowledged <= self.receiver.arrivals.keys():  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # polled: arrivals come from another task, counted, not signalled
        drained = flow.acknowledged <= self.receiver.arrivals.keys()
        unrecorded = await self.unrecorded()
        while unrecorded and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            unrecorded = await self.unrecorded()
        await asyncio.sleep(1.0)  # late duplicates still count
        arrivals = self.receiver.arrivals
        acked = flow.acknowledged
        delivered = len(acked & arrivals.keys())
        return Tally(
            scenario=self.name, backend=self.backend, fault=fault, acknowledged=len(acked), delivered=delivered,
            duplicated=sum(n - 1 for event_id, n in arrivals.items() if event_id in acked and n > 1),
            lost=len(acked) - delivered, worst=max(flow.answers, key=severity, default="none"),
            answers=flow.answers, slowest=flow.slowest, unrecorded=unrecorded,
            drained_in=max(0.0, self.receiver.last_arrival - ended) if drained else None,
        )


class Flow:
    """Events posted one per request at a steady rate (as mail servers post them), plus a management
    read in each dialect every half second; every answer is recorded."""

    CONCURRENCY = 64
    TIMEOUT = 15.0

    def __init__(self, world: World) -> None:
        self.world = world
        self.acknowledged: set[str] = set()
        self.answers: Counter[int | str] = Counter()
        self.slowest = 0.0
        self.sent = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._gate = asyncio.Semaphore(self.CONCURRENCY)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.TIMEOUT))

    async def _call(self, method: str, url: str, *, auth: aiohttp.BasicAuth | None = None,
                    body: bytes | None = None) -> int | None:
        started = time.monotonic()
        try:
            async with self._gate, self._session.request(
                    method, url, data=body, auth=auth,
                    headers={"Content-Type": "application/json"} if body else None) as response:
                await response.read()
                answer: int | str = response.status
        except TimeoutError:
            answer = "timeout"
        except (aiohttp.ClientError, OSError) as exc:
            answer = "reset" if not isinstance(exc, aiohttp.ClientConnectorError) else "refused"
        self.slowest = max(self.slowest, time.monotonic() - started)
        self.answers[answer] += 1
        return answer if isinstance(answer, int) else None

    async def _post_event(self, tenant: Tenant, event_id: str, counted: bool) -> None:
        body = orjson.dumps({"id": event_id, "domain": tenant.domain, "event": "delivered",
                             "recipient": f"{event_id}@example.org"})
        status = await self._call("POST", f"{self.world.base}/v1/events", auth=aiohttp.BasicAuth("api", tenant.key),
                                  body=body)
        if status == 202 and counted:
            self.acknowledged.add(event_id)

    async def _manage(self, tenant: Tenant) -> None:
        base = self.world.base
        await self._call("GET", f"{base}/v3/domains/{tenant.domain}/webhooks",
                         auth=aiohttp.BasicAuth("api", tenant.key))
        await self._call("GET", f"{base}/api/domains/{tenant.domain}/webhooks",
                         auth=aiohttp.BasicAuth(tenant.username, tenant.key))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_for(self, seconds: float) -> None:
        """Keep the flow going for ``seconds``: ``rate`` events per second, and the management reads."""
        tenant = self.world.tenant
        assert tenant is not None
        interval = 1.0 / self.world.rate
        start = time.monotonic()
        next_manage = start
        posted = 0
        while (now := time.monotonic()) - start < seconds:
            while posted < int((now - start) / interval) + 1:  # the events owed up to now
                posted += 1
                self.sent += 1
                self._spawn(self._post_event(tenant, f"{self.world.name}-{uuid.uuid4().hex[:12]}", True))
                for neighbour in self.world.neighbours:
                    self._spawn(self._post_event(neighbour, f"n-{uuid.uuid4().hex[:12]}", False))
            if now >= next_manage:
                next_manage = now + 0.5
                self._spawn(self._manage(tenant))
            await asyncio.sleep(interval)

    async def finish(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._session.close()


async def _pg_admin(statement: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN)
    conn = await asyncpg.connect(host=admin.host, port=admin.port or 5432, user=admin.username,
                                 password=admin.password, database=admin.database, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _pg_url(name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
