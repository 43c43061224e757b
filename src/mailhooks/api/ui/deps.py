"""The dashboard's one door to the services: storage, the core services, the limiter, the sender and the
dispatcher are reached through these functions only (FastAPI dependencies, plus a few plain calls for code
that runs outside a route), so that how the services are built and found changes here and nowhere else.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from mailhooks.api import auth
from mailhooks.api.ratelimit import RateLimiter
from mailhooks.api.state import Services
from mailhooks.core.webhooks import Subscriptions
from mailhooks.db.dashboard import Dashboard
from mailhooks.db.outbox import Outbox
from mailhooks.db.sessions import UiSessions
from mailhooks.db.store import Store
from mailhooks.worker.sender import Sender


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


# Async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per request.
async def store(request: Request) -> Store:
    return _services(request).store


async def subscriptions(request: Request) -> Subscriptions:
    return _services(request).subscriptions


async def limiter(request: Request) -> RateLimiter:
    return _services(request).limiter


async def sender(request: Request) -> Sender:
    return _services(request).require_sender()


async def dashboard(request: Request) -> Dashboard:
    svc = _services(request)
    found = svc.extras.get("dashboard")
    if found is None:
        found = svc.extras["dashboard"] = Dashboard(svc.store)
    return found  # type: ignore[no-any-return]


async def outbox(request: Request) -> Outbox:
    svc = _services(request)
    found = svc.extras.get("outbox")  # the same instance the native API uses
    if found is None:
        found = svc.extras["outbox"] = Outbox(svc.store)
    return found  # type: ignore[no-any-return]


async def sessions(request: Request) -> UiSessions:
    svc = _services(request)
    found = svc.extras.get("ui_sessions")
    if found is None:
        found = svc.extras["ui_sessions"] = UiSessions(svc.store)
    return found  # type: ignore[no-any-return]


def session_secret(request: Request) -> bytes:
    """The key that signs cookies and CSRF tokens: ``MAILHOOKS_SESSION_SECRET`` when set (needed for sessions to
    survive restarts or span several API processes), otherwise random per process."""
    svc = _services(request)
    secret = svc.extras.get("ui_secret")
    if secret is None:
        configured = os.environ.get("MAILHOOKS_SESSION_SECRET", "")
        secret = hashlib.sha256(configured.encode()).digest() if configured else secrets.token_bytes(32)
        svc.extras["ui_secret"] = secret
    return secret  # type: ignore[no-any-return]


def wake_dispatcher(request: Request) -> None:
    """Tell an in-process dispatcher (``serve``) that work is due now; separate workers poll."""
    dispatcher = _services(request).extras.get("dispatcher")
    if dispatcher is not None:
        dispatcher.wake()


async def refuse_throttled_address(request: Request) -> None:
    await auth.refuse_throttled_address(request, _services(request))


async def count_failed_sign_in(request: Request) -> None:
    await auth.count_failed_sign_in(request, _services(request))


StoreDep = Annotated[Store, Depends(store)]
SubscriptionsDep = Annotated[Subscriptions, Depends(subscriptions)]
LimiterDep = Annotated[RateLimiter, Depends(limiter)]
SenderDep = Annotated[Sender, Depends(sender)]
DashboardDep = Annotated[Dashboard, Depends(dashboard)]
OutboxDep = Annotated[Outbox, Depends(outbox)]
SessionsDep = Annotated[UiSessions, Depends(sessions)]
