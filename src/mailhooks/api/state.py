"""What the API is given: the services it reads, declared here by the API itself.

They are built once per process by ``mailhooks.services`` (the composition root). That module sits
above both the api and the worker (it starts the dispatcher inside ``serve``), so the api cannot
import it without a cycle. Instead the api declares, as the ``Services`` protocol, exactly what its
handlers read, and ``services.ProcessServices`` satisfies it structurally; mypy checks that where
``services.py`` hands its object to ``create_app``. It is the same pattern as core's storage ports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request

from mailhooks.api.ratelimit import RateLimiter
from mailhooks.config import Settings
from mailhooks.core.events import Intake
from mailhooks.core.targets import TargetPolicy
from mailhooks.core.webhooks import Subscriptions
from mailhooks.db.dashboard import Dashboard
from mailhooks.db.deliveries import Deliveries
from mailhooks.db.sessions import UiSessions
from mailhooks.db.store import Store
from mailhooks.metrics import QueueFigures
from mailhooks.sending import AnySender


class DispatcherHandle(Protocol):
    """The dispatcher running in this process (``serve``), as the API sees it."""

    def wake(self) -> None:
        """New work is due (an ingest, a retry, a recovery): claim now rather than at the next poll."""

    def health_problem(self) -> str | None:
        """``None`` when healthy, else a short reason (``/healthz`` answers 503 with it)."""


@dataclass(frozen=True)
class UiServices:
    """What only the dashboard (``/ui``) uses."""

    dashboard: Dashboard
    sessions: UiSessions
    secret: bytes  # signs the session and CSRF cookies (``MAILHOOKS_SESSION_SECRET``, else random per process)


class Services(Protocol):
    """The services every handler reads: one instance per process, shared by all requests."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...

    @property
    def policy(self) -> TargetPolicy: ...

    @property
    def subscriptions(self) -> Subscriptions: ...

    @property
    def limiter(self) -> RateLimiter: ...

    @property
    def deliveries(self) -> Deliveries:
        """Delivery reads and actions (retry, recover, re-enable): one instance for the native API and the
        dashboard."""

    @property
    def intake(self) -> Intake: ...

    @property
    def queue_figures(self) -> QueueFigures:
        """The due-queue gauges of ``/metrics``, counted at most every few seconds."""

    @property
    def ui(self) -> UiServices: ...

    @property
    def dispatcher(self) -> DispatcherHandle | None:
        """The dispatcher of ``serve``; ``None`` under ``mailhooks api`` (workers run elsewhere)."""

    def require_sender(self) -> AnySender:
        """The sender of the test endpoints, opened on first use."""


async def services(request: Request) -> Services:
    """Async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per request."""
    return request.app.state.services  # type: ignore[no-any-return]
