"""What every dashboard response shares: the ``/ui`` prefix, the security headers and cookies scoped to it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

PREFIX = "/ui"

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


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Lax, scoped to ``/ui``; Secure when the browser came over HTTPS (directly or through
    a proxy that says so)."""
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(name, value, max_age=max_age, path=PREFIX, httponly=True, samesite="lax", secure=secure)


def delete_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path=PREFIX)
