"""The web dashboard at ``/ui``: server-rendered pages over the same core and storage functions as the APIs.

Thin, like every edge: subscription rules come from ``core.webhooks``, retry/recover/re-enable from
``db.outbox``, keys from ``core.accounts``, test sends from ``worker.sender``; the dashboard's own
read queries live in ``db.dashboard``.

Sessions: sign in with an API key. The session cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) is
HMAC-signed and names the key by its hash, so revoking that key ends every session made with it. It also
carries a random session token whose hash is stored (``db.sessions``): signing out deletes it, so a
copy of the cookie stops working too.
Each session has its own CSRF token, required on every form (the sign-in form has a pre-session
token bound to a cookie of its own). The signing secret is ``MAILHOOKS_SESSION_SECRET`` when set
(needed for sessions to survive restarts or span several API processes), otherwise random per process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import structlog
from fastapi import APIRouter, Depends, FastAPI
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from mailhooks.api.auth import RateLimited, Unauthorized, count_failed_sign_in, refuse_throttled_address
from mailhooks.api.state import Services, services
from mailhooks.core.accounts import (
    KEY_PREFIX_LENGTH,
    authenticate,
    create_api_key,
    hash_key,
    rotate_signing_key,
    whsec,
)
from mailhooks.core.deliveries import DeliveryStatus
from mailhooks.core.errors import CoreError, NotFound, ValidationFailed
from mailhooks.core.event_types import CANONICAL, MAILGUN_TYPES
from mailhooks.core.models import Account, Domain, Webhook
from mailhooks.db.dashboard import Dashboard, DeliveryFilter
from mailhooks.db.outbox import Outbox
from mailhooks.db.sessions import UiSessions
from mailhooks.worker.sender import SendResult, send_sample

log = structlog.get_logger(__name__)

PREFIX = "/ui"
PACKAGE = Path(__file__).resolve().parent.parent.parent
SESSION_COOKIE = "mh_session"
LOGIN_COOKIE = "mh_login"
FLASH_COOKIE = "mh_flash"
SESSION_SECONDS = 12 * 3600
PAYLOAD_FORMATS = ("mailgun", "kirim")
PAGE_SIZE = 20
DELIVERIES_PAGE = 25
MAX_ID = 2**63 - 1

router = APIRouter(prefix=PREFIX, include_in_schema=False)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def is_ui_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


# ---------------------------------------------------------------------- formatting
def _ts(value: float | None) -> str:
    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _hm(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%H:%M")


def _hms(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%H:%M:%S")


def _ago(value: float | None) -> str:
    if value is None:
        return "—"
    seconds = max(0.0, time.time() - value)
    if seconds < 90:
        return f"{int(seconds)} s ago"
    if seconds < 5400:
        return f"{int(seconds // 60)} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _pretty(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: an event stored before ingest bounded it
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


templates = Environment(
    loader=FileSystemLoader(str(PACKAGE / "templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(ts=_ts, hm=_hm, hms=_hms, ago=_ago, ms=_ms, pretty=_pretty)


# ---------------------------------------------------------------------- signing and sessions
def _secret(svc: Services) -> bytes:
    secret = svc.extras.get("ui_secret")
    if secret is None:
        configured = os.environ.get("MAILHOOKS_SESSION_SECRET", "")
        secret = hashlib.sha256(configured.encode()).digest() if configured else secrets.token_bytes(32)
        svc.extras["ui_secret"] = secret
    return secret  # type: ignore[no-any-return]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(svc: Services, purpose: str, data: bytes) -> str:
    return _b64(hmac.new(_secret(svc), purpose.encode() + b"\x00" + data, hashlib.sha256).digest())


def _seal(svc: Services, purpose: str, value: dict[str, Any]) -> str:
    data = orjson.dumps(value)
    return f"{_b64(data)}.{_mac(svc, purpose, data)}"


def _unseal(svc: Services, purpose: str, token: str | None) -> dict[str, Any] | None:
    if not token or "." not in token or len(token) > 4096:
        return None
    body, _, mac = token.partition(".")
    try:
        data = _unb64(body)
    except ValueError:
        return None
    if not hmac.compare_digest(mac, _mac(svc, purpose, data)):
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(name, value, max_age=max_age, path=PREFIX, httponly=True, samesite="lax", secure=secure)


class SignInRequired(Exception):
    pass


class BadCsrf(Exception):
    pass


@dataclass(frozen=True)
class Session:
    account: Account
    csrf: str
    key_hash: str
    key_prefix: str
    token: str = ""


def _sessions(svc: Services) -> UiSessions:
    sessions = svc.extras.get("ui_sessions")
    if sessions is None:
        sessions = svc.extras["ui_sessions"] = UiSessions(svc.store)
    return sessions  # type: ignore[no-any-return]


async def current_session(request: Request, svc: Services = Depends(services)) -> Session:
    value = _unseal(svc, "session", request.cookies.get(SESSION_COOKIE))
    if value is None or not isinstance(value.get("k"), str) or not isinstance(value.get("n"), str) \
            or not isinstance(value.get("s"), str):
        raise SignInRequired()
    issued = value.get("t")
    if not isinstance(issued, int | float) or not (time.time() - SESSION_SECONDS < issued <= time.time() + 60):
        raise SignInRequired()
    found = await svc.store.find_key(value["k"])  # a revoked key ends its sessions
    if found is None or not hmac.compare_digest(found[1], value["k"]):
        raise SignInRequired()
    account = found[0]
    if not await _sessions(svc).is_open(account.id, value["s"]):  # signed out (or expired)
        raise SignInRequired()
    verdict = await svc.limiter.hit(account.guid)
    if not verdict.allowed:
        raise RateLimited(verdict.retry_after, verdict.limit, verdict.remaining)
    return Session(account, _mac(svc, "csrf", value["n"].encode()), value["k"], str(value.get("p", "")), value["s"])


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    # Behind a reverse proxy the browser's host may arrive as X-Forwarded-Host.
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "").split(",")[0].strip()}
    return origin.split("://", 1)[-1] in hosts - {""}


async def form_of(request: Request, session: Session) -> FormData:
    """The posted form, after the CSRF check (token and, when the browser sends one, Origin)."""
    form = await request.form()
    token = form.get("csrf")
    if not isinstance(token, str) or not hmac.compare_digest(token, session.csrf) or not _same_origin(request):
        raise BadCsrf()
    return form


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


# ---------------------------------------------------------------------- rendering
def _flash_of(request: Request, svc: Services) -> dict[str, Any] | None:
    return _unseal(svc, "flash", request.cookies.get(FLASH_COOKIE))


def render(request: Request, name: str, status: int = 200, session: Session | None = None,
           **context: Any) -> HTMLResponse:
    svc: Services = request.app.state.services
    flash = _flash_of(request, svc)
    html = templates.get_template(name).render(
        request=request, session=session, account=session.account if session else None,
        csrf=session.csrf if session else "", flash=flash, path=request.url.path, **context,
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path=PREFIX)
    return response


def redirect(request: Request, to: str, message: str | None = None, kind: str = "ok") -> RedirectResponse:
    response = RedirectResponse(to, status_code=303, headers=SECURITY_HEADERS)
    if message is not None:
        svc: Services = request.app.state.services
        _set_cookie(request, response, FLASH_COOKIE, _seal(svc, "flash", {"m": message[:600], "k": kind}), 120)
    return response


async def html_error(request: Request, exc: Exception) -> Response:
    """Every failure under /ui as a page (the app's handlers send /ui paths here)."""
    if isinstance(exc, SignInRequired | Unauthorized):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = PREFIX
        response = RedirectResponse(f"{PREFIX}/login?{urlencode({'next': target})}", status_code=303,
                                    headers=SECURITY_HEADERS)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response
    status, message = 500, "Something went wrong on our side."
    headers: dict[str, str] = {}
    if isinstance(exc, NotFound):
        status, message = 404, exc.message
    elif isinstance(exc, BadCsrf):
        status, message = 403, "This form expired or did not come from this dashboard. Reload the page and try again."
    elif isinstance(exc, RateLimited):
        seconds = max(1, math.ceil(exc.retry_after))
        status, message = 429, f"Too many requests. Try again in {seconds} s."
        headers["Retry-After"] = str(seconds)
    elif isinstance(exc, CoreError):
        status, message = 400, exc.message
    elif isinstance(exc, RequestValidationError):
        status, message = 404, "Not found"
    elif isinstance(exc, StarletteHTTPException):
        status = exc.status_code
        message = {404: "Not found", 405: "Method not allowed"}.get(status, str(exc.detail))
    else:
        log.exception("ui_error", path=request.url.path, error_type=type(exc).__name__)
    page = render(request, "error.html", status=status, status_code=status, message=message)
    page.headers.update(headers)
    return page


# ---------------------------------------------------------------------- shared helpers
def _dash(svc: Services) -> Dashboard:
    dash = svc.extras.get("dashboard")
    if dash is None:
        dash = svc.extras["dashboard"] = Dashboard(svc.store)
    return dash  # type: ignore[no-any-return]


def _outbox(svc: Services) -> Outbox:
    outbox = svc.extras.get("outbox")  # the same instance the native API uses
    if outbox is None:
        outbox = svc.extras["outbox"] = Outbox(svc.store)
    return outbox  # type: ignore[no-any-return]


def _wake(svc: Services) -> None:
    dispatcher = svc.extras.get("dispatcher")
    if dispatcher is not None:
        dispatcher.wake()


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and 0 < len(value) < 7 and int(value) > 0 else 1


def _pager(page: int, total: int, size: int) -> dict[str, int]:
    pages = max(1, math.ceil(total / size))
    return {"page": min(page, pages), "pages": pages, "total": total}


def _test_message(url: str, result: SendResult) -> tuple[str, str]:
    took = _ms(result.duration_ms)
    if result.status_code is not None:
        kind = "ok" if result.ok else "error"
        return f"Test event to {url}: the receiver answered HTTP {result.status_code} in {took}.", kind
    return f"Test event to {url}: no answer after {took} ({result.error}).", "error"


async def _first_domain(svc: Services, account: Account) -> Domain:
    domains, _ = await _dash(svc).domains_page(account.id, 0, 1)
    if domains:
        return domains[0]
    # An account without domains can still try its account-level webhooks with a sample domain.
    return Domain(id=0, guid="", name="example.com", account_id=account.id, secret="", created_at=time.time())


def _check_type(event_type: str, allowed: tuple[str, ...] = CANONICAL) -> str:
    if event_type not in allowed:
        raise ValidationFailed.field("event_type", f"Choose an event type: {', '.join(allowed)}.")
    return event_type


# The times the dashboard can show and store: from the epoch to the end of year 9999 (``datetime``'s
# calendar). Beyond it, formatting the time back (and PostgreSQL's bigint/float handling) failed with a 500.
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def _epoch(value: str, field: str) -> float | None:
    """A ``datetime-local`` value (read as UTC) or epoch seconds; ``None`` when empty. Anything else
    (unreadable, NUL, before 1970 or past 9999) is a 400 page naming the field."""
    if not value:
        return None
    try:
        seconds = float(value) if value.replace(".", "", 1).isdigit() else \
            datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
    except (ValueError, OverflowError):
        seconds = math.nan
    if not 0 <= seconds <= LATEST:  # NaN fails this too
        raise ValidationFailed.field(field, f"'{field}' must be a date and time (UTC) between 1970 and 9999, "
                                            "or epoch seconds.")
    return seconds


def _local(value: float | None) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M") if value is not None else ""


# ---------------------------------------------------------------------- sign in / out
@router.get("/login")
async def login_form(request: Request, svc: Services = Depends(services)) -> Response:
    next_url = request.query_params.get("next", PREFIX)
    nonce = secrets.token_urlsafe(18)
    response = render(request, "login.html", login_token=_mac(svc, "login", nonce.encode()), next=next_url,
                      signed_out=request.query_params.get("signed_out") == "1")
    _set_cookie(request, response, LOGIN_COOKIE, nonce, 3600)
    return response


@router.post("/login")
async def login(request: Request, svc: Services = Depends(services)) -> Response:
    form = await request.form()
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    token = form.get("csrf")
    if not nonce or not isinstance(token, str) or not hmac.compare_digest(token, _mac(svc, "login", nonce.encode())) \
            or not _same_origin(request):
        raise BadCsrf()
    next_url = _field(form, "next")
    if not is_ui_path(next_url.split("?", 1)[0]) or "//" in next_url or "\\" in next_url:
        next_url = PREFIX
    key = _field(form, "api_key")
    await refuse_throttled_address(request, svc)
    account = await authenticate(svc.store, key)
    if account is None:
        await count_failed_sign_in(request, svc)
        new_nonce = secrets.token_urlsafe(18)
        response = render(request, "login.html", status=401, login_token=_mac(svc, "login", new_nonce.encode()),
                          next=next_url, error="That API key is not valid (or it was revoked).")
        _set_cookie(request, response, LOGIN_COOKIE, new_nonce, 3600)
        return response
    token = secrets.token_urlsafe(24)
    await _sessions(svc).open(account.id, token, SESSION_SECONDS)
    session = {"k": hash_key(key), "p": key[:KEY_PREFIX_LENGTH], "n": secrets.token_urlsafe(18), "t": time.time(),
               "s": token}
    done = RedirectResponse(next_url, status_code=303, headers=SECURITY_HEADERS)
    _set_cookie(request, done, SESSION_COOKIE, _seal(svc, "session", session), SESSION_SECONDS)
    done.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    log.info("ui_sign_in", account=account.guid)
    return done


@router.post("/logout")
async def logout(request: Request, session: Session = Depends(current_session),
                 svc: Services = Depends(services)) -> Response:
    await form_of(request, session)
    await _sessions(svc).close(session.token)  # a copy of the cookie is signed out too
    response = RedirectResponse(f"{PREFIX}/login?signed_out=1", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


# ---------------------------------------------------------------------- overview: domains + last hour
@router.get("")
async def overview(request: Request, session: Session = Depends(current_session),
                   svc: Services = Depends(services)) -> Response:
    dash = _dash(svc)
    account = session.account
    page = _page_number(request.query_params.get("page"))
    domains, total = await dash.domains_page(account.id, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    health = await dash.health(account.id, [d.id for d in domains])
    minutes = await dash.per_minute(account.id)
    return render(request, "overview.html", session=session, nav="overview", domains=domains, health=health,
                  pager=_pager(page, total, PAGE_SIZE), chart=_chart(minutes))


def _chart(minutes: list[Any]) -> dict[str, Any]:
    """Geometry for the last-hour SVG: stacked bars (2xx / other) and a mean-latency line."""
    width, height, gap = 600.0, 140.0, 2.0
    step = width / max(1, len(minutes))
    peak = max([m.ok + m.failed for m in minutes] + [1])
    slowest = max([m.avg_ms for m in minutes if m.avg_ms is not None] + [1.0])
    bars, points = [], []
    for i, m in enumerate(minutes):
        x = i * step + gap / 2
        ok_h = height * m.ok / peak
        fail_h = height * m.failed / peak
        bars.append({"x": round(x, 2), "w": round(step - gap, 2), "ok_y": round(height - ok_h, 2),
                     "ok_h": round(ok_h, 2), "fail_y": round(height - ok_h - fail_h, 2), "fail_h": round(fail_h, 2),
                     "label": f"{_hm(m.start)} UTC: {m.ok} ok, {m.failed} failed"
                              + (f", mean {_ms(m.avg_ms)}" if m.avg_ms is not None else "")})
        if m.avg_ms is not None:
            points.append(f"{x + (step - gap) / 2:.1f},{height - height * m.avg_ms / slowest * 0.95:.1f}")
    return {
        "width": width, "height": height, "bars": bars, "line": " ".join(points), "peak": peak,
        "slowest": slowest if points else None, "ok": sum(m.ok for m in minutes),
        "failed": sum(m.failed for m in minutes), "start": minutes[0].start if minutes else None,
        "end": minutes[-1].start + 60 if minutes else None,
    }


# ---------------------------------------------------------------------- a domain's webhooks
async def _domain(svc: Services, session: Session, name: str) -> Domain:
    return await svc.subscriptions.domain(session.account, name)


def _domain_path(domain: Domain) -> str:
    return f"{PREFIX}/domains/{domain.name}"




def _name_param() -> Any:
    return PathParam(..., max_length=253)  # a fresh one per route: FastAPI binds a Param to one argument


def _guid_param() -> Any:
    return PathParam(..., max_length=64)


@router.get("/domains/{name}")
async def domain_page(request: Request, name: str = _name_param(), session: Session = Depends(current_session),
                      svc: Services = Depends(services)) -> Response:
    domain = await _domain(svc, session, name)
    # A domain has at most 3 URLs x 13 event types: the rules bound this list, no paging needed.
    rows = await svc.store.list_webhooks(session.account.id, domain.id)
    health = (await _dash(svc).health(session.account.id, [domain.id]))[domain.id]
    return render(request, "domain.html", session=session, nav="overview", domain=domain, rows=rows, health=health,
                  types=CANONICAL, formats=PAYLOAD_FORMATS)


def _form_error(request: Request, exc: CoreError, to: str) -> Response:
    if isinstance(exc, NotFound):
        raise exc
    message = exc.message
    if isinstance(exc, ValidationFailed) and exc.errors:
        message = "; ".join(m for msgs in exc.errors.values() for m in msgs)
    return redirect(request, to, message, "error")


@router.post("/domains/{name}/webhooks")
async def create_domain_webhook(request: Request, name: str = _name_param(),
                                session: Session = Depends(current_session),
                                svc: Services = Depends(services)) -> Response:
    form = await form_of(request, session)
    domain = await _domain(svc, session, name)
    try:
        event_type = _check_type(_field(form, "event_type"))
        payload_format = _field(form, "payload_format") or "mailgun"
        if payload_format not in PAYLOAD_FORMATS:
            raise ValidationFailed.field("payload_format", "Choose mailgun or kirim.")
        row = await svc.subscriptions.create_row(session.account, domain, event_type, _field(form, "url"),
                                                 payload_format)
    except CoreError as exc:
        return _form_error(request, exc, _domain_path(domain))
    return redirect(request, _domain_path(domain), f"Webhook created: {row.event_type} → {row.url}")


@router.get("/domains/{name}/webhooks/{guid}")
async def edit_domain_webhook_form(request: Request, name: str = _name_param(), guid: str = _guid_param(),
                                   session: Session = Depends(current_session),
                                   svc: Services = Depends(services)) -> Response:
    domain = await _domain(svc, session, name)
    row = await svc.subscriptions.get_row(session.account, domain, guid)
    return render(request, "webhook_edit.html", session=session, nav="overview", domain=domain, row=row,
                  types=CANONICAL, action=f"{_domain_path(domain)}/webhooks/{row.guid}", back=_domain_path(domain))


@router.post("/domains/{name}/webhooks/{guid}")
async def edit_domain_webhook(request: Request, name: str = _name_param(), guid: str = _guid_param(),
                              session: Session = Depends(current_session),
                              svc: Services = Depends(services)) -> Response:
    form = await form_of(request, session)
    domain = await _domain(svc, session, name)
    try:
        row = await svc.subscriptions.update_row(session.account, domain, guid,
                                                 _check_type(_field(form, "event_type")), _field(form, "url"))
    except CoreError as exc:
        return _form_error(request, exc, f"{_domain_path(domain)}/webhooks/{guid}")
    return redirect(request, _domain_path(domain), f"Webhook updated: {row.event_type} → {row.url}")


@router.post("/domains/{name}/webhooks/{guid}/delete")
async def delete_domain_webhook(request: Request, name: str = _name_param(), guid: str = _guid_param(),
                                session: Session = Depends(current_session),
                                svc: Services = Depends(services)) -> Response:
    await form_of(request, session)
    domain = await _domain(svc, session, name)
    row = await svc.subscriptions.delete_row(session.account, domain, guid)
    return redirect(request, _domain_path(domain), f"Webhook deleted: {row.event_type} → {row.url}")


@router.post("/domains/{name}/webhooks/{guid}/test")
async def test_domain_webhook(request: Request, name: str = _name_param(), guid: str = _guid_param(),
                              session: Session = Depends(current_session),
                              svc: Services = Depends(services)) -> Response:
    await form_of(request, session)
    domain = await _domain(svc, session, name)
    row = await svc.subscriptions.get_row(session.account, domain, guid)
    result = await send_sample(svc.require_sender(), session.account, domain, row.event_type, row.url,
                               row.payload_format)
    return redirect(request, _domain_path(domain), *_test_message(row.url, result))


@router.post("/domains/{name}/webhooks/{guid}/enable")
async def enable_domain_webhook(request: Request, name: str = _name_param(), guid: str = _guid_param(),
                                session: Session = Depends(current_session),
                                svc: Services = Depends(services)) -> Response:
    await form_of(request, session)
    domain = await _domain(svc, session, name)
    row = await svc.subscriptions.get_row(session.account, domain, guid)
    await _outbox(svc).enable_webhook(session.account.id, row.guid)
    return redirect(request, _domain_path(domain),
                    f"Webhook re-enabled: {row.url}. Deliveries that failed while it was disabled stay failed: "
                    "recover them from the deliveries page.")


# ---------------------------------------------------------------------- account-level webhooks (groups)
@dataclass(frozen=True)
class Group:
    group_id: str
    url: str
    description: str | None
    rows: list[Webhook]

    @property
    def types(self) -> list[str]:
        return [row.event_type for row in self.rows]

    @property
    def disabled(self) -> list[Webhook]:
        return [row for row in self.rows if row.disabled_at is not None]

    @property
    def failing_since(self) -> float | None:
        times = [row.failing_since for row in self.rows if row.failing_since is not None]
        return min(times) if times else None


def _group(rows: list[Webhook]) -> Group:
    return Group(rows[0].group_id or "", rows[0].url, rows[0].description, rows)


def _types_of(form: FormData) -> list[str]:
    types = [v for v in form.getlist("event_types") if isinstance(v, str)]
    if not types:
        raise ValidationFailed.field("event_types", "Choose at least one event type.")
    return [_check_type(v, MAILGUN_TYPES) for v in types]


@router.get("/webhooks")
async def account_webhooks(request: Request, session: Session = Depends(current_session),
                           svc: Services = Depends(services)) -> Response:
    # Bounded like a domain's list (3 URLs per type), so shown whole.
    groups = [_group(rows) for rows in await svc.subscriptions.account_groups(session.account)]
    return render(request, "account_webhooks.html", session=session, nav="webhooks", groups=groups,
                  types=MAILGUN_TYPES)


@router.post("/webhooks")
async def create_account_webhook(request: Request, session: Session = Depends(current_session),
                                 svc: Services = Depends(services)) -> Response:
    form = await form_of(request, session)
    try:
        rows = await svc.subscriptions.create_account_webhook(session.account, _field(form, "url"), _types_of(form),
                                                              _field(form, "description") or None)
    except CoreError as exc:
        return _form_error(request, exc, f"{PREFIX}/webhooks")
    return redirect(request, f"{PREFIX}/webhooks", f"Account-level webhook created: {rows[0].url}")


@router.get("/webhooks/{group_id}")
async def edit_account_webhook_form(request: Request, group_id: str = _guid_param(),
                                    session: Session = Depends(current_session),
                                    svc: Services = Depends(services)) -> Response:
    group = _group(await svc.subscriptions.account_group(session.account, group_id))
    return render(request, "account_webhook_edit.html", session=session, nav="webhooks", group=group,
                  types=MAILGUN_TYPES)


@router.post("/webhooks/{group_id}")
async def edit_account_webhook(request: Request, group_id: str = _guid_param(),
                               session: Session = Depends(current_session),
                               svc: Services = Depends(services)) -> Response:
    form = await form_of(request, session)
    await svc.subscriptions.account_group(session.account, group_id)
    try:
        rows = await svc.subscriptions.replace_account_webhook(session.account, group_id, _field(form, "url"),
                                                               _types_of(form), _field(form, "description"))
    except CoreError as exc:
        return _form_error(request, exc, f"{PREFIX}/webhooks/{group_id}")
    return redirect(request, f"{PREFIX}/webhooks", f"Account-level webhook updated: {rows[0].url}")


@router.post("/webhooks/{group_id}/delete")
async def delete_account_webhook(request: Request, group_id: str = _guid_param(),
                                 session: Session = Depends(current_session),
                                 svc: Services = Depends(services)) -> Response:
    await form_of(request, session)
    group = _group(await svc.subscriptions.account_group(session.account, group_id))
    await svc.subscriptions.delete_account_webhooks(session.account, [group_id])
    return redirect(request, f"{PREFIX}/webhooks", f"Account-level webhook deleted: {group.url}")


@router.post("/webhooks/{group_id}/test")
async def test_account_webhook(request: Request, group_id: str = _guid_param(),
                               session: Session = Depends(current_session),
                               svc: Services = Depends(services)) -> Response:
    await form_of(request, session)
    group = _group(await svc.subscriptions.account_group(session.account, group_id))
    domain = await _first_domain(svc, session.account)
    result = await send_sample(svc.require_sender(), session.account, domain, group.types[0], group.url,
                               group.rows[0].payload_format)
    return redirect(request, f"{PREFIX}/webhooks", *_test_message(group.url, result))


@router.post("/webhooks/{group_id}/enable")
async def enable_account_webhook(request: Request, group_id: str = _guid_param(),
                                 session: Session = Depends(current_session),
                                 svc: Services = Depends(services)) -> Response:
    await form_of(request, session)
    group = _group(await svc.subscriptions.account_group(session.account, group_id))
    for row in group.disabled:
        await _outbox(svc).enable_webhook(session.account.id, row.guid)
    return redirect(request, f"{PREFIX}/webhooks", f"Account-level webhook re-enabled: {group.url}")


# ---------------------------------------------------------------------- deliveries
def _query_int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() and len(value) < 19 else None


@router.get("/deliveries")
async def deliveries(request: Request, session: Session = Depends(current_session),
                     svc: Services = Depends(services)) -> Response:
    q = request.query_params
    account = session.account
    domain_name = q.get("domain", "").strip()
    domain = await _domain(svc, session, domain_name) if domain_name else None
    status = q.get("status", "")
    event_type = q.get("event", "")
    since, until = _epoch(q.get("since", ""), "since"), _epoch(q.get("until", ""), "until")
    webhook = q.get("webhook", "")
    if not webhook.isprintable() or len(webhook) > 64:  # no guid is (and PostgreSQL refuses NUL in text)
        raise NotFound("Webhook not found", what="webhook")
    flt = DeliveryFilter(
        domain_id=domain.id if domain else None,
        status=status if status in tuple(DeliveryStatus) else None,
        event_type=event_type if event_type in CANONICAL else None,
        webhook_guid=webhook or None,
        since=since, until=until,
    )
    dash = _dash(svc)
    page = await dash.deliveries_page(account.id, flt, before=_query_int(request, "before"),
                                      after=_query_int(request, "after"), limit=DELIVERIES_PAGE)
    filters = {k: v for k, v in {"domain": domain.name if domain else "", "status": flt.status or "",
                                 "event": flt.event_type or "", "webhook": flt.webhook_guid or "",
                                 "since": _local(since), "until": _local(until)}.items() if v}
    domains, _ = await dash.domains_page(account.id, 0, 200)
    return render(
        request, "deliveries.html", session=session, nav="deliveries", page=page, filters=filters,
        statuses=tuple(DeliveryStatus), types=CANONICAL, domains=domains,
        webhooks=await dash.webhook_choices(account.id),
        newer_url=f"{PREFIX}/deliveries?{urlencode({**filters, 'after': page.newer})}" if page.newer else None,
        older_url=f"{PREFIX}/deliveries?{urlencode({**filters, 'before': page.older})}" if page.older else None,
        first_url=f"{PREFIX}/deliveries?{urlencode(filters)}", recover_since=_local(time.time() - 24 * 3600),
    )


@router.get("/deliveries/{delivery_id}")
async def delivery_page(request: Request, delivery_id: int = PathParam(..., ge=1, le=MAX_ID),
                        session: Session = Depends(current_session), svc: Services = Depends(services)) -> Response:
    page = _page_number(request.query_params.get("page"))
    found = await _dash(svc).delivery(session.account.id, delivery_id, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    if found is None:
        raise NotFound("Delivery not found", what="delivery")
    row, attempts, total = found
    return render(request, "delivery.html", session=session, nav="deliveries", d=row, attempts=attempts,
                  pager=_pager(page, total, PAGE_SIZE), in_flight=row["status"] == DeliveryStatus.DELIVERING)


@router.post("/deliveries/{delivery_id}/retry")
async def retry_delivery(request: Request, delivery_id: int = PathParam(..., ge=1, le=MAX_ID),
                         session: Session = Depends(current_session), svc: Services = Depends(services)) -> Response:
    await form_of(request, session)
    previous = await _outbox(svc).requeue(session.account.id, delivery_id)
    if previous is None:
        raise NotFound("Delivery not found", what="delivery")
    to = f"{PREFIX}/deliveries/{delivery_id}"
    if previous == DeliveryStatus.DELIVERING:
        return redirect(request, to, "This delivery is being attempted right now; try again in a moment.", "error")
    _wake(svc)
    return redirect(request, to, "Queued for another attempt now.")


@router.post("/deliveries/recover")
async def recover(request: Request, session: Session = Depends(current_session),
                  svc: Services = Depends(services)) -> Response:
    form = await form_of(request, session)
    domain = await _domain(svc, session, _field(form, "domain"))
    since = _epoch(_field(form, "since"), "since")
    to = f"{PREFIX}/deliveries?{urlencode({'domain': domain.name})}"
    if since is None:
        return redirect(request, to, "Give the time to recover failed deliveries from.", "error")
    count = await _outbox(svc).recover(session.account.id, domain.id, since)
    if count:
        _wake(svc)
    return redirect(request, to, f"{count} failed deliver{'y' if count == 1 else 'ies'} of {domain.name} "
                                 f"since {_ts(since)} UTC queued again.")


# ---------------------------------------------------------------------- signing key and API keys
def _masked(key: str) -> str:
    return key[:4] + "•" * max(0, len(key) - 8) + key[-4:]


async def _settings(request: Request, session: Session, svc: Services, status: int = 200,
                    **extra: Any) -> Response:
    page = _page_number(request.query_params.get("page"))
    keys, total = await _dash(svc).api_keys_page(session.account.id, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    account = await svc.store.get_account(session.account.id) or session.account
    return render(request, "settings.html", status=status, session=session, nav="settings", keys=keys,
                  pager=_pager(page, total, PAGE_SIZE), masked=_masked(account.signing_key),
                  current_prefix=session.key_prefix, **extra)


@router.get("/settings")
async def settings_page(request: Request, session: Session = Depends(current_session),
                        svc: Services = Depends(services)) -> Response:
    return await _settings(request, session, svc)


@router.post("/settings/reveal")
async def reveal_signing_key(request: Request, session: Session = Depends(current_session),
                             svc: Services = Depends(services)) -> Response:
    """Shown only in answer to a POST (CSRF-checked), never in a page that a GET returns."""
    await form_of(request, session)
    account = await svc.store.get_account(session.account.id) or session.account
    return await _settings(request, session, svc, revealed=account.signing_key,
                           revealed_whsec=whsec(account.signing_key))


@router.post("/settings/rotate")
async def rotate(request: Request, session: Session = Depends(current_session),
                 svc: Services = Depends(services)) -> Response:
    await form_of(request, session)
    await rotate_signing_key(svc.store, session.account)
    return redirect(request, f"{PREFIX}/settings",
                    "Signing key rotated: deliveries from now on are signed with the new key.")


@router.post("/settings/keys")
async def new_api_key(request: Request, session: Session = Depends(current_session),
                      svc: Services = Depends(services)) -> Response:
    await form_of(request, session)
    key = await create_api_key(svc.store, session.account)
    return await _settings(request, session, svc, new_key=key)


@router.post("/settings/keys/{prefix}/revoke")
async def revoke_api_key(request: Request, prefix: str = PathParam(..., max_length=16),
                         session: Session = Depends(current_session), svc: Services = Depends(services)) -> Response:
    await form_of(request, session)
    # A prefix we hand out is printable; NUL (which PostgreSQL refuses in text) names no key.
    if not prefix.isprintable() or not await svc.store.revoke_api_key(prefix, session.account.id):
        raise NotFound("API key not found", what="key")
    return redirect(request, f"{PREFIX}/settings", f"API key {prefix}… revoked.")


def install(app: FastAPI) -> None:
    """Add the dashboard's routes, static files and its sign-in redirect to ``app``."""
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(PACKAGE / "static")), name="ui-static")
    app.add_exception_handler(SignInRequired, html_error)
    app.add_exception_handler(BadCsrf, html_error)
