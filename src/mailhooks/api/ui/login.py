"""Signing in (with an API key) and out."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailhooks.api.ui import deps
from mailhooks.api.ui.rendering import render
from mailhooks.api.ui.session import (
    PostedForm,
    check_login_form,
    close_session,
    form_text,
    login_challenge,
    open_session,
    remember_login_nonce,
)
from mailhooks.api.ui.site import PREFIX, SECURITY_HEADERS, is_ui_path
from mailhooks.core.accounts import authenticate_key
from mailhooks.core.scopes import Scope

log = structlog.get_logger(__name__)

router = APIRouter()


def _login_page(request: Request, next_url: str, status: int = 200, **context: Any) -> Response:
    nonce, token = login_challenge(request)
    response = render(request, "login.html", status=status, login_token=token, next=next_url, **context)
    remember_login_nonce(request, response, nonce)
    return response


def _safe_next(next_url: str) -> str:
    """Where to go once signed in: a dashboard path, never another site (``//host``, ``\\host``)."""
    if not is_ui_path(next_url.split("?", 1)[0]) or "//" in next_url or "\\" in next_url:
        return PREFIX
    return next_url


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _login_page(request, request.query_params.get("next", PREFIX),
                       signed_out=request.query_params.get("signed_out") == "1")


@router.post("/login")
async def login(request: Request, store: deps.StoreDep, sessions: deps.SessionsDep) -> Response:
    form = await request.form()
    check_login_form(request, form)
    next_url = _safe_next(form_text(form, "next"))
    key = form_text(form, "api_key")
    await deps.refuse_throttled_address(request)
    found = await authenticate_key(store, key)
    if found is None:
        await deps.count_failed_sign_in(request)
        return _login_page(request, next_url, status=401, error="That API key is not valid (or it was revoked).")
    account, grant = found
    if grant.scope is not Scope.ADMIN:
        # The dashboard changes everything an account has (keys, the signing key): admin keys only.
        return _login_page(request, next_url, status=403,
                           error=f"That API key's scope is '{grant.scope}': only admin keys can sign in here.")
    done = RedirectResponse(next_url, status_code=303, headers=SECURITY_HEADERS)
    await open_session(request, done, sessions, account, key)
    log.info("ui_sign_in", account=account.guid)
    return done


@router.post("/logout")
async def logout(posted: PostedForm, sessions: deps.SessionsDep) -> Response:
    response = RedirectResponse(f"{PREFIX}/login?signed_out=1", status_code=303, headers=SECURITY_HEADERS)
    await close_session(response, sessions, posted.session)
    return response
