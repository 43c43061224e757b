"""The native API: health, metrics, the signing key, event ingest, and deliveries (see and act).

Thin: validation and rules live in ``core.events`` / ``core.retry``, SQL in ``db.intake``, ``db.deliveries``
and ``db.queue``."""

from __future__ import annotations

from typing import Any, Literal

import orjson
import structlog
from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from mailhooks import tracing
from mailhooks.api.auth import grant_of, ingest_account, native_account
from mailhooks.api.openapi.common import openapi_json
from mailhooks.api.openapi.native import AUTH_ERRORS, ERRORS, INGEST_BODY, METRICS_RESPONSES
from mailhooks.api.responses import JSON
from mailhooks.api.scopes import requires
from mailhooks.api.state import Services, services
from mailhooks.core.accounts import whsec
from mailhooks.core.errors import DeliveryNotFound, NotFound, ValidationFailed
from mailhooks.core.masking import masked_url
from mailhooks.core.message_ids import message_id
from mailhooks.core.models import Account
from mailhooks.core.nesting import TOO_DEEP, is_recursion_error
from mailhooks.core.replay import retry_now
from mailhooks.core.scopes import Need
from mailhooks.db.deliveries import Deliveries

log = structlog.get_logger(__name__)

router = APIRouter(tags=["native"])

@router.get("/livez", responses={200: openapi_json("Health")}, openapi_extra={"security": []})
@requires(Need.PUBLIC)
async def livez() -> Response:
    """Liveness: the process answers, nothing else is checked (for orchestrators' liveness probes, and
    the benchmark's bare endpoint). ``/healthz`` is the readiness check: database and dispatcher."""
    return JSON({"status": "ok"})


@router.get("/healthz", responses={200: openapi_json("Health"), 503: openapi_json("Health", "Unhealthy")},
            openapi_extra={"security": []})
@requires(Need.PUBLIC)
async def healthz(svc: Services = Depends(services)) -> Response:
    checks: dict[str, Any] = {}
    healthy = True
    try:
        await svc.store.count_accounts()
        checks["database"] = "ok"
    except Exception as exc:  # report, don't crash: this endpoint exists to say what is broken
        checks["database"] = f"error: {type(exc).__name__}"
        healthy = False
    # Reported, not a reason for 503: without Redis every request is still served (each process counts
    # its own budget), so taking this instance out of rotation would only make things worse.
    checks["rate_limit"] = (await svc.limiter.check()).value
    if svc.dispatcher is not None:
        problem = svc.dispatcher.health_problem()
        checks["dispatcher"] = problem or "ok"
        healthy = healthy and problem is None
    return JSON({"status": "ok" if healthy else "unhealthy", **checks}, status_code=200 if healthy else 503)


@router.get("/v1/signing-key", responses={200: openapi_json("SigningKey"), **AUTH_ERRORS})
@requires(Need.MANAGE)
async def signing_key(account: Account = Depends(native_account)) -> Response:
    return JSON({"http_signing_key": account.signing_key, "whsec": whsec(account.signing_key)})


# ---------------------------------------------------------------------- events and deliveries
# Decision: re-enabling a disabled subscription lives at ``/v1/subscriptions/{guid}/enable``. The
# ``/v1/webhooks…`` paths belong to the Mailgun dialect (its account-level webhooks) and answer in its
# shapes; a subscription here is one webhook row (one URL x one event type), addressed by the guid
# that the Kirim dialect shows and that every delivery reports as ``webhook``.

MAX_PAGE = 1000
MAX_ID = 2**63 - 1
# Ids and event types are printable (see ID_PATTERN): a filter with control characters (NUL, which
# PostgreSQL refuses in text) is invalid input, not a query.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


def _deliveries(svc: Services) -> Deliveries:
    return svc.deliveries


def _cursor(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise ValidationFailed.field("cursor", "The cursor is not one this API returned.")
    return int(value)


def _delivery(row: dict[str, Any], message_id_key: bytes) -> dict[str, Any]:
    return {
        "id": row["id"], "message_id": message_id(message_id_key, row["id"]),
        "event_id": row["event_id"], "event": row["event_type"], "domain": row["domain"],
        "webhook": row["webhook"], "url": masked_url(row["url"]), "payload_format": row["payload_format"],
        "status": row["status"], "attempt_count": row["attempts"] or 0, "next_attempt_at": row["next_attempt_at"],
        "last_status_code": row["last_status_code"], "last_error": row["last_error"],
        "created_at": row["created_at"], "updated_at": row["updated_at"],
    }


async def _domain_id(svc: Services, account: Account, name: str | None) -> int | None:
    if name is None:
        return None
    return (await svc.subscriptions.domain(account, name)).id


@router.post("/v1/events", status_code=202,
             responses={202: openapi_json("EventIds", "Accepted"), **ERRORS,
                        413: openapi_json("NativeError", "Body too large")},
             openapi_extra=INGEST_BODY)
@requires(Need.INGEST)
async def ingest_events(request: Request, account: Account = Depends(ingest_account),
                        svc: Services = Depends(services)) -> Response:
    """Accept one event or an array of up to 1000; idempotent on ``id`` per domain."""
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = TOO_DEEP if is_recursion_error(str(exc)) else "The body must be valid JSON."
        raise ValidationFailed.field("body", message) from exc
    ids, _many, new = await svc.intake.ingest(account, body, only_domain=grant_of(request).domain,
                                              traceparent=tracing.traceparent())
    if svc.dispatcher is not None and new:
        svc.dispatcher.wake()
    return JSON({"ids": ids}, status_code=202)


@router.get("/v1/events", responses={200: openapi_json("EventList"), **ERRORS})
@requires(Need.READ)
async def list_events(
    domain: str | None = Query(None, max_length=253),
    event: str | None = Query(None, max_length=32, pattern=PRINTABLE),
    event_id: str | None = Query(None, max_length=128, pattern=PRINTABLE), limit: int = Query(100, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(None, max_length=18, pattern="^[0-9]*$"),
    account: Account = Depends(native_account), svc: Services = Depends(services),
) -> Response:
    """The account's events, newest first."""
    rows = await _deliveries(svc).list_events(account.id, await _domain_id(svc, account, domain), event, event_id,
                                              _cursor(cursor), limit)
    # The stored payload is served as the JSON it is (no decode and re-encode): cheaper, and an event
    # stored before nesting was bounded cannot make its page fail to encode.
    items = [{"id": r["event_id"], "domain": r["domain"], "event": r["event_type"], "occurred_at": r["occurred_at"],
              "received_at": r["received_at"], "data": orjson.Fragment(r["payload"])} for r in rows]
    next_cursor = str(rows[-1]["id"]) if len(rows) == limit else None
    return JSON({"items": items, "next_cursor": next_cursor})


@router.get("/v1/deliveries", responses={200: openapi_json("DeliveryList"), **ERRORS})
@requires(Need.READ)
async def list_deliveries(
    domain: str | None = Query(None, max_length=253),
    event_id: str | None = Query(None, max_length=128, pattern=PRINTABLE),
    status: Literal["pending", "delivering", "succeeded", "failed", "rejected"] | None = Query(None),
    webhook: str | None = Query(None, max_length=64, pattern=PRINTABLE), limit: int = Query(100, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(None, max_length=18, pattern="^[0-9]*$"),
    account: Account = Depends(native_account), svc: Services = Depends(services),
) -> Response:
    """The account's deliveries, newest first; ``webhook`` is a subscription guid."""
    rows = await _deliveries(svc).list_deliveries(
        account.id, domain_id=await _domain_id(svc, account, domain), event_id=event_id, status=status,
        webhook_guid=webhook, before=_cursor(cursor), limit=limit)
    next_cursor = str(rows[-1]["id"]) if len(rows) == limit else None
    key = await svc.store.message_id_key()
    return JSON({"items": [_delivery(r, key) for r in rows], "next_cursor": next_cursor})


@router.get("/v1/deliveries/{delivery_id}", responses={200: openapi_json("DeliveryDetail"), **ERRORS})
@requires(Need.READ)
async def get_delivery(delivery_id: int = PathParam(..., ge=1, le=MAX_ID),
                       account: Account = Depends(native_account), svc: Services = Depends(services)) -> Response:
    """One delivery with every attempt."""
    found = await _deliveries(svc).get_delivery(account.id, delivery_id)
    if found is None:
        raise DeliveryNotFound()
    row, attempts = found
    return JSON({**_delivery(row, await svc.store.message_id_key()), "attempts": attempts})


@router.post("/v1/deliveries/{delivery_id}/retry", status_code=202,
             responses={202: openapi_json("DeliveryDetail", "Queued"), 409: openapi_json("NativeError", "In flight"),
                        **ERRORS})
@requires(Need.MANAGE)
async def retry_delivery(delivery_id: int = PathParam(..., ge=1, le=MAX_ID),
                         account: Account = Depends(native_account), svc: Services = Depends(services)) -> Response:
    """Queue the delivery for one more attempt now (a replay, whatever its status)."""
    deliveries = _deliveries(svc)
    await retry_now(deliveries, account.id, delivery_id)
    _wake(svc)
    found = await deliveries.get_delivery(account.id, delivery_id)
    assert found is not None
    return JSON({**_delivery(found[0], await svc.store.message_id_key()), "attempts": found[1]}, status_code=202)


@router.post("/v1/domains/{domain}/deliveries/recover", status_code=202,
             responses={202: openapi_json("Recovered", "Queued"), **ERRORS})
@requires(Need.MANAGE)
async def recover_deliveries(domain: str = PathParam(..., max_length=253),
                             since: float = Query(..., description="epoch seconds"),
                             account: Account = Depends(native_account),
                             svc: Services = Depends(services)) -> Response:
    """Re-queue this domain's failed deliveries created since ``since``, one more attempt each."""
    found = await svc.subscriptions.domain(account, domain)
    count = await _deliveries(svc).recover(account.id, found.id, since)
    if count:
        _wake(svc)
    return JSON({"requeued": count}, status_code=202)


@router.post("/v1/subscriptions/{guid}/enable", responses={200: openapi_json("SubscriptionEnabled"), **ERRORS})
@requires(Need.MANAGE)
async def enable_subscription(guid: str = PathParam(..., max_length=64, pattern=PRINTABLE),
                              account: Account = Depends(native_account),
                              svc: Services = Depends(services)) -> Response:
    """Re-enable a subscription that was disabled (410, or failing for days). Its failed deliveries
    stay failed: recover them with ``POST /v1/domains/{domain}/deliveries/recover``."""
    if not await _deliveries(svc).enable_webhook(account.id, guid):
        raise NotFound("Subscription not found", what="webhook")
    return JSON({"guid": guid, "enabled": True})


def _wake(svc: Services) -> None:
    if svc.dispatcher is not None:
        svc.dispatcher.wake()


@router.get("/metrics", responses=METRICS_RESPONSES,
            openapi_extra={"security": []})
@requires(Need.PUBLIC)
async def prometheus_metrics(svc: Services = Depends(services)) -> Response:
    """Delivery counters of this process and the queue gauges (counted in the database at most every
    few seconds; ``mailhooks_queue_figures_age_seconds`` says how old they are)."""
    await svc.queue_figures.refresh()
    svc.queue_figures.export()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
