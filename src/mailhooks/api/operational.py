"""Operational webhooks and email alerts (native API): what the account hears about its own
subscriptions and deliveries (``core.operational``).

- ``POST /v1/operational-webhooks`` ``{"url", "event_types"}`` → 201; ``GET`` lists them; ``DELETE …/{guid}``.
  Deliveries are signed with the account's signing key (Standard Webhooks headers), like every delivery.
- ``GET`` / ``PUT /v1/alerts`` ``{"email"}``: the address the same events are mailed to (null: none).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.auth import native_account
from mailhooks.api.openapi.operational import ALERTS, ALERTS_SET, CREATED, DELETED, LISTED, body
from mailhooks.api.responses import JSON
from mailhooks.api.scopes import requires
from mailhooks.api.state import Services, services
from mailhooks.core.errors import NotFound, ValidationFailed
from mailhooks.core.models import Account
from mailhooks.core.nesting import TOO_DEEP, is_recursion_error
from mailhooks.core.operational import check_alert_email, check_kinds
from mailhooks.core.scopes import Need
from mailhooks.core.targets import check_target
from mailhooks.db.operational_webhooks import OperationalWebhooks

router = APIRouter(tags=["operational"])

PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


async def _json_object(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = TOO_DEEP if is_recursion_error(str(exc)) else "The body must be valid JSON."
        raise ValidationFailed.field("body", message) from exc
    if not isinstance(data, dict):
        raise ValidationFailed.field("body", "The body must be a JSON object.")
    for name in data:
        if name not in allowed:
            raise ValidationFailed.field(str(name)[:64], f"Unknown field; expected {', '.join(allowed)}.")
    return data


@router.post("/v1/operational-webhooks", status_code=201, responses=CREATED,
             openapi_extra=body("OperationalWebhookIn"))
@requires(Need.MANAGE)
async def create_operational_webhook(request: Request, account: Account = Depends(native_account),
                                     svc: Services = Depends(services)) -> Response:
    """Subscribe a URL to the account's operational events."""
    data = await _json_object(request, ("url", "event_types"))
    if "url" not in data:
        raise ValidationFailed.field("url", "The url field is required.")
    kinds = check_kinds(data.get("event_types"))
    url = await check_target(data["url"], svc.policy)  # the same SSRF policy as every subscription
    created = await OperationalWebhooks(svc.store).create(account.id, url, kinds)
    return JSON(created, status_code=201)


@router.get("/v1/operational-webhooks", responses=LISTED)
@requires(Need.READ)
async def list_operational_webhooks(account: Account = Depends(native_account),
                                    svc: Services = Depends(services)) -> Response:
    return JSON({"items": await OperationalWebhooks(svc.store).list(account.id)})


@router.delete("/v1/operational-webhooks/{guid}", status_code=204, responses=DELETED)
@requires(Need.MANAGE)
async def delete_operational_webhook(guid: str = PathParam(..., max_length=64, pattern=PRINTABLE),
                                     account: Account = Depends(native_account),
                                     svc: Services = Depends(services)) -> Response:
    if not await OperationalWebhooks(svc.store).delete(account.id, guid):
        raise NotFound("Operational webhook not found", what="webhook")
    return Response(status_code=204)


@router.get("/v1/alerts", responses=ALERTS)
@requires(Need.READ)
async def get_alerts(account: Account = Depends(native_account), svc: Services = Depends(services)) -> Response:
    return JSON({"email": await OperationalWebhooks(svc.store).alert_email(account.id)})


@router.put("/v1/alerts", responses=ALERTS_SET, openapi_extra=body("Alerts"))
@requires(Need.MANAGE)
async def put_alerts(request: Request, account: Account = Depends(native_account),
                     svc: Services = Depends(services)) -> Response:
    """Set (or with ``null`` remove) the address the account's operational events are mailed to."""
    data = await _json_object(request, ("email",))
    if "email" not in data:
        raise ValidationFailed.field("email", "The email field is required.")
    email = check_alert_email(data["email"])
    await OperationalWebhooks(svc.store).set_alert_email(account.id, email)
    return JSON({"email": email})
