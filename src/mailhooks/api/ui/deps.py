"""The dashboard's one door to the services: storage, the core services, the limiter and the
dispatcher are reached through these functions only (FastAPI dependencies, plus a few plain calls for code
that runs outside a route), so that how the services are built and found changes here and nowhere else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from mailhooks.api import auth
from mailhooks.api.ratelimit import RateLimiter
from mailhooks.api.state import Services
from mailhooks.core.webhooks import Subscriptions
from mailhooks.db.dashboard import Dashboard
from mailhooks.db.deliveries import Deliveries
from mailhooks.db.sessions import UiSessions
from mailhooks.db.store import Store


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


# Async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per request.
async def store(request: Request) -> Store:
    return _services(request).store


async def subscriptions(request: Request) -> Subscriptions:
    return _services(request).subscriptions


async def limiter(request: Request) -> RateLimiter:
    return _services(request).limiter


async def dashboard(request: Request) -> Dashboard:
    return _services(request).ui.dashboard


async def deliveries(request: Request) -> Deliveries:
    return _services(request).deliveries  # the same instance the native API uses


async def sessions(request: Request) -> UiSessions:
    return _services(request).ui.sessions


async def all_services(request: Request) -> Services:
    """For the few flows shared with the dialects that take the services whole (the test send)."""
    return _services(request)


def signing_key_overlap(request: Request) -> float:
    """Seconds a replaced signing key keeps signing (``MAILHOOKS_SIGNING_KEY_OVERLAP``)."""
    return _services(request).settings.signing_key_overlap


def session_secret(request: Request) -> bytes:
    """The key that signs cookies and CSRF tokens (``MAILHOOKS_SESSION_SECRET``, else random per process)."""
    return _services(request).ui.secret


def wake_dispatcher(request: Request) -> None:
    """Tell an in-process dispatcher (``serve``) that work is due now; separate workers poll."""
    dispatcher = _services(request).dispatcher
    if dispatcher is not None:
        dispatcher.wake()


async def refuse_throttled_address(request: Request) -> None:
    await auth.refuse_throttled_address(request, _services(request))


async def count_failed_sign_in(request: Request) -> None:
    await auth.count_failed_sign_in(request, _services(request))


StoreDep = Annotated[Store, Depends(store)]
SubscriptionsDep = Annotated[Subscriptions, Depends(subscriptions)]
LimiterDep = Annotated[RateLimiter, Depends(limiter)]
ServicesDep = Annotated[Services, Depends(all_services)]
DashboardDep = Annotated[Dashboard, Depends(dashboard)]
DeliveriesDep = Annotated[Deliveries, Depends(deliveries)]
SessionsDep = Annotated[UiSessions, Depends(sessions)]
