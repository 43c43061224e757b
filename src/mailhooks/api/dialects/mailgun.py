"""Mailgun's error shapes, as recorded from production: ``{"message"}`` with a newline, 400 for any
invalid input, a plain-text ``Forbidden`` for bad credentials."""

from __future__ import annotations

from starlette.responses import Response

from mailhooks.api.dialects.base import Dialect, DialectErrors
from mailhooks.api.responses import MailgunJSON
from mailhooks.core.errors import Conflict, ErrorKind, ValidationFailed

ACCOUNT_WEBHOOKS = "/v1/webhooks"  # the v1 API answers a conflict with 409; v3/v4 with 400


def unauthorized() -> Response:
    return Response("Forbidden", status_code=401, media_type="text/plain; charset=utf-8",
                    headers={"Www-Authenticate": 'Basic realm="MG API"'})


class MailgunErrors(DialectErrors):
    dialect = Dialect.MAILGUN
    WORDS = {
        ErrorKind.TOO_MANY_URLS: "Maximum of {limit} urls for a given webhook type ({event_type})",
        ErrorKind.URL_EXISTS: "Webhook for event type '{event_type}' with URL '{url}' already exists",
        ErrorKind.TYPE_EXISTS: "Webhook already exists",
    }

    def error(self, status: int, message: str, errors: dict[str, list[str]] | None = None,
              headers: dict[str, str] | None = None) -> Response:
        if status == 401:
            return unauthorized()
        return MailgunJSON({"message": message}, status_code=status, headers=headers)

    def too_many_requests(self, seconds: int, headers: dict[str, str]) -> Response:
        return MailgunJSON({"message": "Too many requests", "retry-seconds": seconds}, status_code=429,
                           headers=headers)

    def conflict(self, path: str, exc: Conflict) -> Response:
        return self.error(409 if path.startswith(ACCOUNT_WEBHOOKS) else 400, self.words(exc))

    def invalid(self, exc: ValidationFailed) -> Response:
        return self.error(400, self.words(exc))

    def request_invalid(self, errors: dict[str, list[str]]) -> Response:
        field, messages = next(iter(errors.items()))
        return self.error(400, f"Invalid parameter '{field}': {messages[0]}")
