"""``GET /v1/audit``: the account's audit log, newest first, a page at a time."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from mailhooks.api.auth import native_account
from mailhooks.api.openapi.audit import AUDIT_RESPONSES
from mailhooks.api.responses import JSON
from mailhooks.api.scopes import requires
from mailhooks.api.state import Services, services
from mailhooks.core.models import Account
from mailhooks.core.scopes import Need

router = APIRouter(tags=["native"])

MAX_PAGE = 500


@router.get("/v1/audit", responses=AUDIT_RESPONSES)
@requires(Need.ADMIN)
async def audit_log(limit: int = Query(100, ge=1, le=MAX_PAGE),
                    cursor: str | None = Query(None, max_length=18, pattern="^[0-9]*$"),
                    account: Account = Depends(native_account), svc: Services = Depends(services)) -> Response:
    """Who changed what in this account (webhooks through any dialect or the dashboard, keys, the signing
    key, subscriptions, replays), newest first. Pass ``next_cursor`` back as ``cursor`` for the next page."""
    entries = await svc.store.audit_page(account.id, int(cursor) if cursor else None, limit)
    items = [{"at": e.at, "actor": e.actor, "action": e.action, "target": e.target} for e in entries]
    next_cursor = str(entries[-1].id) if len(entries) == limit else None
    return JSON({"items": items, "next_cursor": next_cursor})
