"""Intake sources: the owner's ``/v1/sources`` (create, list, delete; native credentials) and the intake
URL ``POST /v1/sources/{guid}/events`` that the mail platform calls with its own authentication.

Thin: each provider's scheme and mapping is in ``core/sources/``, storage in ``db/sources.py``. A refused
intake request is answered in the native error shape and counted in
``mailhooks_source_rejections_total{provider, reason}``; a bad signature also counts against the
address's failed-sign-in budget, like a wrong API key.
"""

from __future__ import annotations

import orjson
import structlog
from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.auth import RateLimited, count_failed_sign_in, native_account, refuse_throttled_address
from mailhooks.api.dialects import errors_for
from mailhooks.api.openapi.common import openapi_json
from mailhooks.api.openapi.native import ERRORS
from mailhooks.api.openapi.sources import CREATE_BODY, INTAKE, INTAKE_RESPONSES
from mailhooks.api.ratelimit import Budget
from mailhooks.api.responses import JSON
from mailhooks.api.scopes import requires
from mailhooks.api.state import Services, services
from mailhooks.core.errors import ValidationFailed
from mailhooks.core.models import Account
from mailhooks.core.scopes import Need
from mailhooks.core.sources.base import Rejection, RequestParts, SourceRejected
from mailhooks.core.sources.service import Sources
from mailhooks.db.sources import SourceStore
from mailhooks.metrics import SOURCE_EVENTS, SOURCE_REJECTIONS
from mailhooks.sending.sns import SnsFetcher

log = structlog.get_logger(__name__)

router = APIRouter(tags=["sources"])

WHO_SENT_IT = (Rejection.SIGNATURE, Rejection.EXPIRED, Rejection.REPLAYED)


_fetchers: dict[tuple[str, ...], SnsFetcher] = {}  # one per process (its certificate cache), per host setting


def _sources(svc: Services) -> Sources:
    hosts = svc.settings.sns_cert_hosts
    fetcher = _fetchers.setdefault(hosts, SnsFetcher(hosts))
    return Sources(SourceStore(svc.store), svc.intake, fetcher.outside())


@router.post("/v1/sources", status_code=201, responses={201: openapi_json("SourceCreated", "Created"), **ERRORS,
                                                   413: openapi_json("NativeError", "Body too large")},
             openapi_extra=CREATE_BODY)
@requires(Need.MANAGE)
async def create_source(request: Request, account: Account = Depends(native_account),
                        svc: Services = Depends(services)) -> Response:
    """A new source; the answer says what to enter at the provider (generated credentials: only here)."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed.field("body", "The body must be valid JSON.") from exc
    if not isinstance(body, dict):
        raise ValidationFailed.field("body", "The body must be a JSON object.")
    created = await _sources(svc).create(account, body, str(request.base_url))
    return JSON(created, status_code=201)


@router.get("/v1/sources", responses={200: openapi_json("SourceList"), **ERRORS})
@requires(Need.READ)
async def list_sources(account: Account = Depends(native_account), svc: Services = Depends(services)) -> Response:
    """The account's sources (secrets read back as ``"set"``)."""
    return JSON({"items": await _sources(svc).list(account)})


@router.delete("/v1/sources/{guid}", status_code=204, responses={204: {"description": "Deleted"}, **ERRORS})
@requires(Need.MANAGE)
async def delete_source(guid: str = PathParam(..., max_length=64), account: Account = Depends(native_account),
                        svc: Services = Depends(services)) -> Response:
    """Delete a source: its intake URL answers 404 from now on (events already stored stay)."""
    await _sources(svc).delete(account, guid)
    return Response(status_code=204)


@router.post("/v1/sources/{guid}/events", responses=INTAKE_RESPONSES, openapi_extra=INTAKE)
@requires(Need.PUBLIC)
async def receive_events(request: Request, guid: str = PathParam(..., max_length=64),
                         svc: Services = Depends(services)) -> Response:
    """The provider's webhook POST: verified by the provider's own scheme, stored like ``POST /v1/events``."""
    await refuse_throttled_address(request, svc)
    sources = _sources(svc)
    source = await sources.find(guid)
    provider = source.provider.value
    parts = RequestParts({k.lower(): v for k, v in request.headers.items()}, await request.body())
    try:
        await sources.verify(source, parts)
        verdict = await svc.limiter.hit(source.account_guid, Budget.INGEST)
        if not verdict.allowed:
            raise RateLimited(verdict.retry_after, verdict.limit, verdict.remaining)
        received = await sources.receive(source, parts.body)
    except SourceRejected as exc:
        SOURCE_REJECTIONS.labels(provider, exc.reason.value).inc()
        if exc.reason in WHO_SENT_IT:
            await count_failed_sign_in(request, svc)
        log.info("source_rejected", source=source.guid, provider=provider, reason=exc.reason.value)
        return errors_for(request.url.path).error(exc.reason.status, exc.message)
    SOURCE_EVENTS.labels(provider, "new").inc(received.new)
    SOURCE_EVENTS.labels(provider, "repeat").inc(len(set(received.ids)) - received.new)
    SOURCE_EVENTS.labels(provider, "ignored").inc(received.ignored)
    if received.new and svc.dispatcher is not None:
        svc.dispatcher.wake()
    return JSON({"ids": received.ids, "new": received.new, "ignored": received.ignored})
