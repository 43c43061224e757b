"""The native subscriptions API: every subscription of the account (one webhook row = one URL x one event
type, whichever dialect created it), read with its settings and its settings changed.

Rules live in ``core.subscriptions`` (validation) and ``core.masking`` (what a secret reads back as);
SQL in ``db.subscriptions``. A guid of another account is the same 404 as an unknown one."""

from __future__ import annotations

import enum
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.auth import native_account
from mailhooks.api.openapi.common import openapi_json
from mailhooks.api.openapi.subscriptions import NATIVE_ERRORS, PATCH_BODY
from mailhooks.api.responses import JSON
from mailhooks.api.scopes import requires
from mailhooks.api.state import Services, services
from mailhooks.core.errors import NotFound, ValidationFailed
from mailhooks.core.masking import masked_headers, masked_url, unmask_headers
from mailhooks.core.models import Account, Webhook
from mailhooks.core.nesting import TOO_DEEP, is_recursion_error
from mailhooks.core.scopes import Need
from mailhooks.core.subscriptions import SubscriptionSettings, parse_changes, settings_to_json
from mailhooks.db.subscriptions import change_settings, get_subscription, list_subscriptions

router = APIRouter(tags=["native"])

MAX_PAGE = 1000
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


class SubscriptionState(enum.StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"  # by a 410 or by days of failures: see ``disabled_reason``


def subscription_json(hook: Webhook, domain: str | None) -> dict[str, Any]:
    """A subscription as the native API shows it: secrets masked (``core.masking``)."""
    disabled = hook.disabled_at is not None
    return {
        "guid": hook.guid, "domain": domain, "event_type": hook.event_type, "url": masked_url(hook.url),
        "payload_format": hook.payload_format,
        "state": SubscriptionState.DISABLED if disabled else SubscriptionState.ENABLED,
        "disabled_reason": hook.disabled_reason if disabled else None,
        "description": hook.description, "created_at": hook.created_at, "modified_at": hook.modified_at,
        **settings_to_json(hook.settings, masked_headers(hook.settings.headers)),
    }


def _not_found() -> NotFound:
    return NotFound("Subscription not found", what="webhook")


@router.get("/v1/subscriptions", responses={200: openapi_json("SubscriptionList"), **NATIVE_ERRORS})
@requires(Need.READ)
async def list_all(
    domain: str | None = Query(None, max_length=253),
    event_type: str | None = Query(None, max_length=32, pattern=PRINTABLE),
    limit: int = Query(100, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(None, max_length=18, pattern="^[0-9]*$"),
    account: Account = Depends(native_account), svc: Services = Depends(services),
) -> Response:
    """The account's subscriptions, oldest first; ``domain`` keeps that domain's and the account-level ones
    (the subscriptions its events reach)."""
    domain_id = (await svc.subscriptions.domain(account, domain)).id if domain is not None else None
    rows = await list_subscriptions(svc.store, account.id, domain_id=domain_id, event_type=event_type,
                                    after=int(cursor) if cursor else None, limit=limit)
    next_cursor = str(rows[-1][0].id) if len(rows) == limit else None
    return JSON({"items": [subscription_json(*row) for row in rows], "next_cursor": next_cursor})


@router.get("/v1/subscriptions/{guid}", responses={200: openapi_json("Subscription"), **NATIVE_ERRORS})
@requires(Need.READ)
async def get_one(guid: str = PathParam(..., max_length=64, pattern=PRINTABLE),
                  account: Account = Depends(native_account), svc: Services = Depends(services)) -> Response:
    found = await get_subscription(svc.store, account.id, guid)
    if found is None:
        raise _not_found()
    return JSON(subscription_json(*found))


@router.patch("/v1/subscriptions/{guid}", responses={200: openapi_json("Subscription"), **NATIVE_ERRORS,
                                                     413: openapi_json("NativeError", "Body too large")},
              openapi_extra=PATCH_BODY)
@requires(Need.MANAGE)
async def patch_one(request: Request, guid: str = PathParam(..., max_length=64, pattern=PRINTABLE),
                    account: Account = Depends(native_account), svc: Services = Depends(services)) -> Response:
    """Change some settings: a key present replaces that setting, ``null`` resets it, a key absent is
    kept. A masked header value sent back unchanged keeps the stored secret."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        message = TOO_DEEP if is_recursion_error(str(exc)) else "The body must be valid JSON."
        raise ValidationFailed.field("body", message) from exc

    def change(current: SubscriptionSettings) -> SubscriptionSettings:
        return parse_changes(body, current, keep_masked=unmask_headers)

    found = await change_settings(svc.store, account.id, guid, change)
    if found is None:
        raise _not_found()
    return JSON(subscription_json(*found))
