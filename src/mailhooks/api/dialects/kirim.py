"""Kirim.Email's error shapes: the ``{"success": false, "message"}`` envelope, Laravel's 422
``Validation failed.`` with ``errors`` for any invalid input (a conflict included)."""

from __future__ import annotations

from starlette.responses import Response

from mailhooks.api.dialects.base import Dialect, DialectErrors
from mailhooks.api.responses import JSON
from mailhooks.core.errors import Conflict, ErrorKind, NotFound, ValidationFailed

DOMAIN_NOT_FOUND = "Domain not found or you do not own this domain"
WEBHOOK_NOT_FOUND = "Webhook not found"
VALIDATION_FAILED = "Validation failed."
TOO_MANY = "Too many attempts. Please try again later."
SERVER_ERROR = "An error occurred while processing the request."


class KirimErrors(DialectErrors):
    dialect = Dialect.KIRIM
    WORDS = {
        ErrorKind.TOO_MANY_URLS: "A maximum of {limit} urls is allowed per event type.",
        ErrorKind.URL_EXISTS: "A webhook for this type and url already exists.",
    }

    def error(self, status: int, message: str, errors: dict[str, list[str]] | None = None,
              headers: dict[str, str] | None = None) -> Response:
        body: dict[str, object] = {"success": False, "message": message}
        if errors is not None:
            body["errors"] = errors
        return JSON(body, status_code=status, headers=headers)

    def too_many_requests(self, seconds: int, headers: dict[str, str]) -> Response:
        return JSON({"success": False, "message": TOO_MANY}, status_code=429, headers=headers)

    def not_found(self, exc: NotFound) -> Response:
        return self.error(404, DOMAIN_NOT_FOUND if exc.what == "domain" else WEBHOOK_NOT_FOUND)

    def conflict(self, path: str, exc: Conflict) -> Response:
        return self.error(422, VALIDATION_FAILED, {"url": [self.words(exc)]})

    def invalid(self, exc: ValidationFailed) -> Response:
        return self.error(422, VALIDATION_FAILED, self.field_errors(exc))

    def request_invalid(self, errors: dict[str, list[str]]) -> Response:
        return self.error(422, VALIDATION_FAILED, errors)

    def http_error(self, status: int, detail: str, headers: dict[str, str]) -> Response:
        if status == 404:  # an unknown path under /api/ is, to Kirim.Email, a domain that is not yours
            return self.error(404, DOMAIN_NOT_FOUND)
        return super().http_error(status, detail, headers)

    def server_error(self) -> Response:
        return self.error(500, SERVER_ERROR)
