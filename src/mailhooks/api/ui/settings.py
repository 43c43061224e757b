"""Keys (``/ui/settings``): the signing key (masked, revealed on request, rotated), the account's API
keys (created, revoked) and the address its alerts are mailed to."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.dialects import Dialect
from mailhooks.api.ui import deps
from mailhooks.api.ui.errors import form_error
from mailhooks.api.ui.formatting import masked, ts
from mailhooks.api.ui.inputs import PAGE_SIZE, KeyPrefix, offset_of, page_number, pager
from mailhooks.api.ui.rendering import redirect, render
from mailhooks.api.ui.session import PostedForm, Session, SignedIn
from mailhooks.api.ui.site import PREFIX
from mailhooks.core.accounts import create_api_key, rotate_signing_key, whsec
from mailhooks.core.errors import NotFound, ValidationFailed
from mailhooks.core.operational import check_alert_email
from mailhooks.core.scopes import Scope, parse_scope
from mailhooks.db.dashboard import Dashboard
from mailhooks.db.operational_webhooks import OperationalWebhooks
from mailhooks.db.store import Store

PAGE = f"{PREFIX}/settings"

router = APIRouter()


async def _settings(request: Request, session: Session, store: Store, dash: Dashboard, status: int = 200,
                    **extra: Any) -> Response:
    page = page_number(request)
    keys, total = await dash.api_keys_page(session.account.id, offset_of(page), PAGE_SIZE)
    account = await store.get_account(session.account.id) or session.account
    # Only when it still signs, and only its end: the replaced key itself is never shown again.
    until = account.previous_key_until
    previous_until = until if account.previous_signing_key and until and until > time.time() else None
    return render(request, "settings.html", status=status, session=session, nav="settings", keys=keys,
                  pager=pager(page, total), masked=masked(account.signing_key), previous_until=previous_until,
                  current_prefix=session.key_prefix, scopes=list(Scope),
                  domains=await store.list_domains(account.id),
                  alert_email=await OperationalWebhooks(store).alert_email(session.account.id), **extra)


@router.get("/settings")
async def settings_page(request: Request, session: SignedIn, store: deps.StoreDep,
                        dash: deps.DashboardDep) -> Response:
    return await _settings(request, session, store, dash)


@router.post("/settings/reveal")
async def reveal_signing_key(request: Request, posted: PostedForm, store: deps.StoreDep,
                             dash: deps.DashboardDep) -> Response:
    """Shown only in answer to a POST (CSRF-checked), never in a page that a GET returns."""
    account = await store.get_account(posted.account.id) or posted.account
    return await _settings(request, posted.session, store, dash, revealed=account.signing_key,
                           revealed_whsec=whsec(account.signing_key))


@router.post("/settings/rotate")
async def rotate(request: Request, posted: PostedForm, store: deps.StoreDep) -> Response:
    rotated = await rotate_signing_key(store, posted.account, deps.signing_key_overlap(request))
    if rotated.previous_valid_until is None:
        return redirect(request, PAGE, "Signing key rotated: deliveries from now on are signed with the new key only.")
    return redirect(request, PAGE, "Signing key rotated: deliveries are signed with the new key, and their "
                    f"webhook-signature also with the previous one until {ts(rotated.previous_valid_until)} UTC.")


@router.post("/settings/alerts")
async def set_alert_email(request: Request, posted: PostedForm, store: deps.StoreDep) -> Response:
    """The address operational events are mailed to (``PUT /v1/alerts``); empty: none."""
    try:
        email = check_alert_email(posted.text("email").strip())
    except ValidationFailed as exc:
        return form_error(request, exc, PAGE, Dialect.NATIVE)
    await OperationalWebhooks(store).set_alert_email(posted.account.id, email)
    return redirect(request, PAGE, f"Alerts are mailed to {email}." if email else "Alerts are not mailed.")


@router.post("/settings/keys")
async def new_api_key(request: Request, posted: PostedForm, store: deps.StoreDep,
                      dash: deps.DashboardDep) -> Response:
    scope = parse_scope(posted.text("scope") or Scope.ADMIN)
    if scope is None:
        raise ValidationFailed.field("scope", f"Choose a scope: {', '.join(Scope)}.")
    key = await create_api_key(store, posted.account, scope, posted.text("domain") or None)
    return await _settings(request, posted.session, store, dash, new_key=key)


@router.post("/settings/keys/{prefix}/revoke")
async def revoke_api_key(request: Request, prefix: KeyPrefix, posted: PostedForm, store: deps.StoreDep) -> Response:
    # A prefix we hand out is printable; NUL (which PostgreSQL refuses in text) names no key.
    if not prefix.isprintable() or not await store.revoke_api_key(prefix, posted.account.id):
        raise NotFound("API key not found", what="key")
    return redirect(request, PAGE, f"API key {prefix}… revoked.")
