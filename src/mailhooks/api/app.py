"""The ASGI application: routers, the exception handlers (each answering in the dialect of the path, see
``api/dialects``), and the lifespan."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from mailhooks import tracing
from mailhooks.api import (
    audit,
    kirim,
    mailgun,
    native,
    operational,
    replays,
    signing_key,
    sources,
    subscriptions,
    suppressions,
    ui,
)
from mailhooks.api.auth import Forbidden, RateLimited, Unauthorized
from mailhooks.api.bodies import BodyLimit
from mailhooks.api.dialects import errors_for
from mailhooks.api.docs import install_docs
from mailhooks.api.openapi import install_openapi
from mailhooks.api.state import Services
from mailhooks.api.unhandled import AnswerUnexpectedErrors
from mailhooks.config import Settings
from mailhooks.core.errors import CoreError
from mailhooks.db import engine as database

log = structlog.get_logger(__name__)


async def _core_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CoreError)
    return errors_for(request.url.path).core_error(request.url.path, exc)


async def _unauthorized(request: Request, _exc: Exception) -> Response:
    return errors_for(request.url.path).unauthorized()


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Forbidden)
    return errors_for(request.url.path).forbidden(exc.message)


async def _rate_limited(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimited)
    return errors_for(request.url.path).rate_limited(exc.retry_after, exc.limit, exc.remaining)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return errors_for(request.url.path).http_error(exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ()) if part not in ("path", "query", "body", "header")]
        errors.setdefault(".".join(loc) or "request", []).append(str(err.get("msg", "invalid")))
    return errors_for(request.url.path).request_invalid(errors)


# Seconds a client is asked to wait while the database cannot be reached: long enough not to hammer a
# database coming back up, short enough that an ingest client's backlog stays small.
DATABASE_RETRY_AFTER = 5
_unavailable_logged = [0.0]  # when the last "database unavailable" line was logged (one per second)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """A connection-level database error is a 503 with ``Retry-After`` in the caller's dialect (a page on
    the dashboard); any other error of these types goes on, to be answered as unexpected (500)."""
    if not database.is_unavailable(exc):
        raise exc
    now = time.monotonic()
    if now - _unavailable_logged[0] >= 1.0:
        _unavailable_logged[0] = now
        log.warning("database_unavailable", path=request.url.path, error=repr(exc)[:300])
    path = request.url.path
    if ui.is_ui_path(path):
        page = ui.render(request, "error.html", status=503, status_code=503,
                         message="The database cannot be reached right now. Try again in a few seconds.")
        page.headers.update({"Retry-After": str(DATABASE_RETRY_AFTER)})
        return page
    return errors_for(path).unavailable(DATABASE_RETRY_AFTER)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    return errors_for(request.url.path).server_error()


def _html_under_ui(handler: Callable[[Request, Exception], Awaitable[Response]]
                   ) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The dashboard (``/ui``) answers every error as a page; the API paths keep their dialect's shape."""

    async def wrapped(request: Request, exc: Exception) -> Response:
        if ui.is_ui_path(request.url.path):
            return await ui.html_error(request, exc)
        return await handler(request, exc)

    return wrapped


# Opens the services for the app's lifetime and closes them after: ``mailhooks.services`` provides it.
ServicesFactory = Callable[[], AbstractAsyncContextManager[Services]]


def create_app(settings: Settings, open_services: ServicesFactory) -> FastAPI:
    """Build the app. Its services come from ``open_services``, entered by the lifespan: the process's
    composition root (``mailhooks.services.web_app``) decides what runs beside the API."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services() as svc:
            app.state.services = svc
            yield

    app = FastAPI(
        title="mailhooks",
        version="0.1.0",
        description="Self-hosted webhooks for email senders. Speaks the Mailgun and Kirim.Email webhook APIs.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, from local assets
        redoc_url=None,
    )
    install_docs(app)
    app.include_router(mailgun.router)
    app.include_router(suppressions.router)
    app.include_router(kirim.router)
    app.include_router(native.router)
    app.include_router(signing_key.router)
    app.include_router(subscriptions.router)
    app.include_router(audit.router)
    app.include_router(operational.router)
    app.include_router(replays.router)
    app.include_router(sources.router)
    ui.install(app)
    app.add_exception_handler(CoreError, _html_under_ui(_core_error))
    app.add_exception_handler(Unauthorized, _html_under_ui(_unauthorized))
    app.add_exception_handler(Forbidden, _html_under_ui(_forbidden))
    app.add_exception_handler(RateLimited, _html_under_ui(_rate_limited))
    app.add_exception_handler(StarletteHTTPException, _html_under_ui(_http_error))
    app.add_exception_handler(RequestValidationError, _html_under_ui(_request_validation))
    for kind in database.ERROR_TYPES:
        app.add_exception_handler(kind, _database_unavailable)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Added last, so outermost of ours: every unexpected error is answered without dropping the connection.
    app.add_middleware(AnswerUnexpectedErrors, answer=_html_under_ui(_server_error))
    tracing.instrument(app)  # traces on: the ingest request's span (outermost: it sees the answer's status)

    install_openapi(app)
    return app
