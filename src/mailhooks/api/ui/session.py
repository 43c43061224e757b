"""Dashboard sessions and CSRF, as FastAPI dependencies: ``SignedIn`` for every page, ``PostedForm`` for
every form.

Sessions: sign in with an API key. The session cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) is
HMAC-signed and names the key by its hash, so revoking that key ends every session made with it. It also
carries a random session token whose hash is stored (``db.sessions``): signing out deletes it, so a
copy of the cookie stops working too.
Each session has its own CSRF token, required on every form (the sign-in form has a pre-session
token bound to a cookie of its own). The signing secret is ``deps.session_secret``.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.auth import RateLimited
from mailhooks.api.ui import deps, signing
from mailhooks.api.ui.site import delete_cookie, set_cookie
from mailhooks.core.accounts import KEY_PREFIX_LENGTH, hash_key
from mailhooks.core.audit import acting_as, dashboard_actor
from mailhooks.core.models import Account
from mailhooks.db.sessions import UiSessions

SESSION_COOKIE = "mh_session"
LOGIN_COOKIE = "mh_login"
SESSION_SECONDS = 12 * 3600
LOGIN_SECONDS = 3600


class SignInRequired(Exception):
    """No valid session: the error page sends the browser to the sign-in form."""


class BadCsrf(Exception):
    """A form without this session's CSRF token, or posted from another origin: a 403 page."""


@dataclass(frozen=True)
class Session:
    account: Account
    csrf: str  # this session's CSRF token, in every form it renders
    key_prefix: str  # of the API key it signed in with ("this session" on the keys page)
    token: str  # the random token whose hash ``db.sessions`` stores; sign-out deletes it


async def current_session(request: Request, store: deps.StoreDep, sessions: deps.SessionsDep,
                          limiter: deps.LimiterDep) -> Session:
    """The signed-in session, counted against the account's management budget; else ``SignInRequired``."""
    secret = deps.session_secret(request)
    value = signing.unseal(secret, "session", request.cookies.get(SESSION_COOKIE))
    if value is None or not isinstance(value.get("k"), str) or not isinstance(value.get("n"), str) \
            or not isinstance(value.get("s"), str):
        raise SignInRequired()
    issued = value.get("t")
    if not isinstance(issued, int | float) or not (time.time() - SESSION_SECONDS < issued <= time.time() + 60):
        raise SignInRequired()
    found = await store.find_key(value["k"])  # a revoked key ends its sessions
    if found is None or not hmac.compare_digest(found[1], value["k"]):
        raise SignInRequired()
    account = found[0]
    if not await sessions.is_open(account.id, value["s"]):  # signed out (or expired)
        raise SignInRequired()
    verdict = await limiter.hit(account.guid)
    if not verdict.allowed:
        raise RateLimited(verdict.retry_after, verdict.limit, verdict.remaining)
    acting_as(dashboard_actor(account.username))  # the audit log names the dashboard user of each change
    csrf = signing.mac(secret, "csrf", value["n"].encode())
    return Session(account, csrf, str(value.get("p", "")), value["s"])


SignedIn = Annotated[Session, Depends(current_session)]


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    # Behind a reverse proxy the browser's host may arrive as X-Forwarded-Host.
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "").split(",")[0].strip()}
    return origin.split("://", 1)[-1] in hosts - {""}


def form_text(form: FormData, name: str) -> str:
    """A form field, stripped; empty when absent or a file."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


@dataclass(frozen=True)
class Posted:
    """A posted form that passed the CSRF check, with the session that posted it."""

    session: Session
    form: FormData

    @property
    def account(self) -> Account:
        return self.session.account

    def text(self, name: str) -> str:
        return form_text(self.form, name)

    def texts(self, name: str) -> list[str]:
        """Every value of a repeated field (checkboxes), files left out."""
        return [value for value in self.form.getlist(name) if isinstance(value, str)]


async def posted_form(request: Request, session: SignedIn) -> Posted:
    """The posted form, after the CSRF check (token and, when the browser sends one, Origin)."""
    form = await request.form()
    token = form.get("csrf")
    if not isinstance(token, str) or not hmac.compare_digest(token, session.csrf) or not same_origin(request):
        raise BadCsrf()
    return Posted(session, form)


PostedForm = Annotated[Posted, Depends(posted_form)]


# ---------------------------------------------------------------------- signing in and out
def login_challenge(request: Request) -> tuple[str, str]:
    """A fresh ``(nonce, token)`` for the sign-in form: the nonce goes in a cookie, the token in the form."""
    nonce = secrets.token_urlsafe(18)
    return nonce, signing.mac(deps.session_secret(request), "login", nonce.encode())


def remember_login_nonce(request: Request, response: Response, nonce: str) -> None:
    set_cookie(request, response, LOGIN_COOKIE, nonce, LOGIN_SECONDS)


def check_login_form(request: Request, form: FormData) -> None:
    """The sign-in form's CSRF check: its token matches the nonce cookie, and Origin (when sent) is ours."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    token = form.get("csrf")
    expected = signing.mac(deps.session_secret(request), "login", nonce.encode())
    if not nonce or not isinstance(token, str) or not hmac.compare_digest(token, expected) \
            or not same_origin(request):
        raise BadCsrf()


async def open_session(request: Request, response: Response, sessions: UiSessions, account: Account,
                       key: str) -> None:
    """Record a new session for ``account`` signed in with ``key`` and give ``response`` its cookie."""
    token = secrets.token_urlsafe(24)
    await sessions.open(account.id, token, SESSION_SECONDS)
    value = {"k": hash_key(key), "p": key[:KEY_PREFIX_LENGTH], "n": secrets.token_urlsafe(18), "t": time.time(),
             "s": token}
    set_cookie(request, response, SESSION_COOKIE, signing.seal(deps.session_secret(request), "session", value),
               SESSION_SECONDS)
    delete_cookie(response, LOGIN_COOKIE)


async def close_session(response: Response, sessions: UiSessions, session: Session) -> None:
    await sessions.close(session.token)  # a copy of the cookie is signed out too
    delete_cookie(response, SESSION_COOKIE)


def forget_session(response: Response) -> None:
    delete_cookie(response, SESSION_COOKIE)
