"""Every failure under ``/ui`` as a page (the app's error handlers send ``/ui`` paths here), and a failed
form as a flash message on the page it came from."""

from __future__ import annotations

import math
from urllib.parse import urlencode

import structlog
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailhooks.api.auth import RateLimited, Unauthorized
from mailhooks.api.dialects import Dialect, errors_of
from mailhooks.api.ui.rendering import redirect, render
from mailhooks.api.ui.session import BadCsrf, SignInRequired, forget_session
from mailhooks.api.ui.site import PREFIX, SECURITY_HEADERS
from mailhooks.core.errors import CoreError, NotFound, ValidationFailed

log = structlog.get_logger(__name__)


async def html_error(request: Request, exc: Exception) -> Response:
    """Signed out: to the sign-in form (back here afterwards, for a GET). Otherwise a page with the status
    and what went wrong, in words for the person using the dashboard."""
    if isinstance(exc, SignInRequired | Unauthorized):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = PREFIX
        response = RedirectResponse(f"{PREFIX}/login?{urlencode({'next': target})}", status_code=303,
                                    headers=SECURITY_HEADERS)
        forget_session(response)
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


def form_error(request: Request, exc: CoreError, to: str, dialect: Dialect) -> Response:
    """A refused form back to ``to`` with the reasons as a flash message, in the words of the API ``dialect``
    whose calls the form makes; a missing thing stays a 404 page."""
    if isinstance(exc, NotFound):
        raise exc
    words = errors_of(dialect)
    message = words.words(exc)
    if isinstance(exc, ValidationFailed) and exc.errors:
        message = "; ".join(m for msgs in words.field_errors(exc).values() for m in msgs)
    return redirect(request, to, message, "error")
