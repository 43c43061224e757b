"""Pages and redirects: the Jinja templates (``mailhooks/templates``), the flash message carried across a
redirect in a signed cookie, and the security headers on every answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from mailhooks.api.ui import deps, signing
from mailhooks.api.ui.formatting import FILTERS
from mailhooks.api.ui.session import Session
from mailhooks.api.ui.site import SECURITY_HEADERS, delete_cookie, set_cookie

PACKAGE = Path(__file__).resolve().parent.parent.parent  # src/mailhooks: its templates/ and static/
FLASH_COOKIE = "mh_flash"
FLASH_SECONDS = 120
FLASH_MAX_CHARS = 600

templates = Environment(
    loader=FileSystemLoader(str(PACKAGE / "templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(FILTERS)


def render(request: Request, name: str, status: int = 200, session: Session | None = None,
           **context: Any) -> HTMLResponse:
    """The template ``name`` as a page, with the session's account and CSRF token and the pending flash
    message (shown once: its cookie is deleted)."""
    flash = signing.unseal(deps.session_secret(request), "flash", request.cookies.get(FLASH_COOKIE))
    html = templates.get_template(name).render(
        request=request, session=session, account=session.account if session else None,
        csrf=session.csrf if session else "", flash=flash, path=request.url.path, **context,
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if flash is not None:
        delete_cookie(response, FLASH_COOKIE)
    return response


def redirect(request: Request, to: str, message: str | None = None, kind: str = "ok") -> RedirectResponse:
    """A 303 to ``to``, which shows ``message`` (``kind`` "ok" or "error") once."""
    response = RedirectResponse(to, status_code=303, headers=SECURITY_HEADERS)
    if message is not None:
        flash = signing.seal(deps.session_secret(request), "flash", {"m": message[:FLASH_MAX_CHARS], "k": kind})
        set_cookie(request, response, FLASH_COOKIE, flash, FLASH_SECONDS)
    return response
