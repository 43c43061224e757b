"""Each dialect's exact response shapes, success and error.

Which dialect answers is decided by the path alone, so that even framework-level failures (unknown
route, wrong method, oversized body) come back in the shape the caller's SDK understands.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.responses import Response

MAILGUN_PREFIXES = ("/v3/", "/v4/", "/v5/", "/v1/webhooks")
KIRIM_PREFIX = "/api/"

KIRIM_DOMAIN_NOT_FOUND = "Domain not found or you do not own this domain"
KIRIM_WEBHOOK_NOT_FOUND = "Webhook not found"
KIRIM_VALIDATION_FAILED = "Validation failed."
KIRIM_TOO_MANY = "Too many attempts. Please try again later."
KIRIM_SERVER_ERROR = "An error occurred while processing the request."


def dialect_for(path: str) -> str:
    if path.startswith(MAILGUN_PREFIXES):
        return "mailgun"
    if path.startswith(KIRIM_PREFIX):
        return "kirim"
    return "native"


class MailgunJSON(Response):
    """Compact JSON followed by a newline, as recorded from production."""

    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content) + b"\n"


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def mailgun_unauthorized() -> Response:
    return Response(
        "Forbidden", status_code=401, media_type="text/plain; charset=utf-8",
        headers={"Www-Authenticate": 'Basic realm="MG API"'},
    )


def error_response(path: str, status: int, message: str, errors: dict[str, list[str]] | None = None,
                   headers: dict[str, str] | None = None, kirim_message: str | None = None) -> Response:
    """An error in the dialect of ``path``."""
    dialect = dialect_for(path)
    if dialect == "mailgun":
        if status == 401:
            return mailgun_unauthorized()
        return MailgunJSON({"message": message}, status_code=status, headers=headers)
    if dialect == "kirim":
        body: dict[str, Any] = {"success": False, "message": kirim_message or message}
        if errors is not None:
            body["errors"] = errors
        return JSON(body, status_code=status, headers=headers)
    native: dict[str, Any] = {"message": message}
    if errors is not None:
        native["errors"] = errors
    return JSON(native, status_code=status, headers=headers)


def rate_limited(path: str, retry_after: float, limit: int, remaining: int = 0) -> Response:
    seconds = max(1, math.ceil(retry_after))
    headers = {"Retry-After": str(seconds), "X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining)}
    dialect = dialect_for(path)
    if dialect == "mailgun":
        return MailgunJSON({"message": "Too many requests", "retry-seconds": seconds}, status_code=429,
                           headers=headers)
    if dialect == "kirim":
        return JSON({"success": False, "message": KIRIM_TOO_MANY}, status_code=429, headers=headers)
    return JSON({"message": "Too many requests", "retry_seconds": seconds}, status_code=429, headers=headers)


def validation_error(path: str, errors: dict[str, list[str]], message: str | None = None) -> Response:
    """400 ``{"message"}`` for Mailgun, 422 ``Validation failed.`` + ``errors`` for Kirim and native."""
    first = message or next(iter(errors.values()))[0]
    if dialect_for(path) == "mailgun":
        return MailgunJSON({"message": first}, status_code=400)
    return error_response(path, 422, first, errors=errors, kirim_message=KIRIM_VALIDATION_FAILED)

