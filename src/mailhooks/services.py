"""The composition root: every long-lived object of a process, built once, in one place.

``mailhooks serve``, ``mailhooks api`` and ``mailhooks worker`` each build one ``ProcessServices``
(``web_app`` for the first two, ``run_worker`` for the last); first-run bootstrap runs on it before
the API answers. Nothing else constructs a store, a policy, a limiter or a dispatcher for a server.

Where it sits: ``config <- core <- db <- {api, worker} <- services <- cli``. This module imports the
api (to build the app and what only the API uses, such as the rate limiter) and the worker (to run
the dispatcher inside ``serve`` and alone), so neither may import it back: that would be a cycle.
Each declares what it receives instead. The api reads the ``Services`` protocol of ``api/state.py``,
which ``ProcessServices`` satisfies structurally (mypy checks it where ``web_app`` hands it to
``create_app``), and sees the dispatcher only as a ``DispatcherHandle`` (wake, health); the dispatcher
takes the store, settings and target policy as constructor arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from mailhooks import tracing
from mailhooks.api.ratelimit import Budget, RateLimiter
from mailhooks.api.state import UiServices
from mailhooks.bootstrap import bootstrap
from mailhooks.config import Settings
from mailhooks.core.events import Intake
from mailhooks.core.targets import TargetPolicy
from mailhooks.core.webhooks import Subscriptions
from mailhooks.db.dashboard import Dashboard
from mailhooks.db.deliveries import Deliveries
from mailhooks.db.intake import IntakeStore
from mailhooks.db.queue import delivery_queue
from mailhooks.db.sessions import UiSessions
from mailhooks.db.store import Store
from mailhooks.metrics import QueueFigures
from mailhooks.sending import AnySender, open_sender
from mailhooks.worker.dispatcher import Dispatcher
from mailhooks.worker.operational import OperationalRelay
from mailhooks.worker.replays import ReplayRunner

if TYPE_CHECKING:
    from fastapi import FastAPI

log = structlog.get_logger(__name__)

WORKER_HEALTH_EVERY = 5.0  # seconds between the lone worker's health checks (logged when unhealthy)


def session_secret(configured: str | None) -> bytes:
    """The key signing ``/ui`` cookies: derived from ``MAILHOOKS_SESSION_SECRET`` (sessions survive
    restarts and span API processes), else random, so sessions end with the process."""
    return hashlib.sha256(configured.encode()).digest() if configured else secrets.token_bytes(32)


@dataclass
class ProcessServices:
    """What one process runs with. Satisfies ``api.state.Services``, the API's view of it."""

    settings: Settings
    store: Store
    policy: TargetPolicy
    subscriptions: Subscriptions
    limiter: RateLimiter
    deliveries: Deliveries  # reads and actions: one instance for the native API and the dashboard
    intake: Intake
    queue_figures: QueueFigures
    ui: UiServices
    dispatcher: Dispatcher | None = None  # started by ``start_dispatcher`` (``serve``, ``worker``)
    operational: OperationalRelay | None = None  # beside the dispatcher: operational events out, alerts mailed
    replays: ReplayRunner | None = None  # beside the dispatcher: replays and back-fills in batches
    _sender: AnySender | None = field(default=None, init=False)  # the test endpoints', opened on first use

    @classmethod
    def build(cls, settings: Settings, *, cached_reads: bool) -> ProcessServices:
        """Everything, unconnected (connections open on first use). ``cached_reads``: the API's read
        cache of keys, domains and webhook lists (``db/cache.py``); a lone worker has no use for it."""
        store = Store(settings.database_url, cache=cached_reads)
        policy = TargetPolicy(settings.allow_private_targets, settings.allowed_cidrs)
        limits = {Budget.MANAGEMENT: settings.rate_limit, Budget.INGEST: settings.ingest_rate_limit,
                  Budget.AUTH_FAILURES: settings.auth_failure_limit}
        return cls(
            settings=settings, store=store, policy=policy, subscriptions=Subscriptions(store, policy),
            limiter=RateLimiter(limits, settings.redis_url), deliveries=Deliveries(store),
            intake=Intake(store, IntakeStore(store)), queue_figures=QueueFigures(delivery_queue(store)),
            ui=UiServices(Dashboard(store), UiSessions(store), session_secret(settings.session_secret)),
        )

    def require_sender(self) -> AnySender:
        if self._sender is None:
            self._sender = open_sender(self.settings.http_client, self.policy, timeout=self.settings.delivery_timeout)
        return self._sender

    async def start_dispatcher(self) -> Dispatcher:
        dispatcher = Dispatcher(self.store, self.settings, self.policy)
        await dispatcher.start()
        self.dispatcher = dispatcher
        self.operational = OperationalRelay(self.store, self.settings, dispatcher.wake)
        self.operational.start()
        self.replays = ReplayRunner(self.store, dispatcher.owner, self.settings.replay_batch_size,
                                    self.settings.replay_rate, dispatcher.wake)
        self.replays.start()
        return dispatcher

    async def close(self) -> None:
        """Stop the dispatcher (in-flight sends get a grace period, results are flushed), then close
        the sender and the database connections."""
        if self.operational is not None:
            await self.operational.stop()
        if self.replays is not None:
            await self.replays.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self._sender is not None:
            await self._sender.close()
        await self.store.close()
        if tracing.TRACER is not None:  # off a hung collector's way: the export waits in a thread, bounded
            await asyncio.to_thread(tracing.flush)


def web_app(settings: Settings, *, dispatcher: bool = False, bootstrap_at: tuple[str, int] | None = None
            ) -> FastAPI:
    """The ASGI app of ``serve`` (``dispatcher=True``: the dispatcher runs in the same loop) or ``api``.
    ``bootstrap_at``: the (host, port) the server listens on, for the first-run banner's curl lines;
    ``None`` skips bootstrap (tests that run the app in process)."""
    from mailhooks.api.app import create_app  # here: a lone worker need not load the web stack (~0.5 s)

    tracing.enable_from_env()  # before the app is built: it adds the ingest span when traces are on

    @contextlib.asynccontextmanager
    async def open_services() -> AsyncIterator[ProcessServices]:
        svc = ProcessServices.build(settings, cached_reads=True)
        try:
            if bootstrap_at is not None:
                await bootstrap(svc.store, settings, *bootstrap_at)
            if dispatcher:
                await svc.start_dispatcher()
            yield svc
        finally:
            await svc.close()

    return create_app(settings, open_services)


async def _work(settings: Settings) -> None:
    tracing.enable_from_env()
    svc = ProcessServices.build(settings, cached_reads=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        dispatcher = await svc.start_dispatcher()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WORKER_HEALTH_EVERY)
            problem = dispatcher.health_problem()
            if problem:
                log.warning("dispatcher_unhealthy", problem=problem)
    finally:
        await svc.close()


def run_worker(settings: Settings) -> None:
    """``mailhooks worker``: the dispatcher alone, on uvloop, until SIGTERM/SIGINT."""
    import uvloop

    uvloop.run(_work(settings))
