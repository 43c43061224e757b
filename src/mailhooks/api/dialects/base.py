"""What every dialect renders, and the defaults that most of them share (the native shapes)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from enum import StrEnum

from starlette.responses import Response

from mailhooks.core.errors import Conflict, CoreError, ErrorKind, NotFound, ValidationFailed

# The same for every dialect: nothing of the caller's doing, and nothing an SDK parses beyond the status.
UNAVAILABLE = "The service is temporarily unavailable (its database cannot be reached). Try again shortly."
SERVER_ERROR = "Internal server error"
FRAMEWORK_MESSAGES = {404: "Not Found", 405: "Method Not Allowed"}


class Dialect(StrEnum):
    MAILGUN = "mailgun"
    KIRIM = "kirim"
    NATIVE = "native"


class DialectErrors(ABC):
    """Every error response of one dialect. ``WORDS`` puts the coded core errors in its words
    (``str.format`` templates over the error's ``params``); an uncoded error keeps its own message."""

    dialect: Dialect
    WORDS: Mapping[ErrorKind, str] = {}

    @abstractmethod
    def error(self, status: int, message: str, errors: dict[str, list[str]] | None = None,
              headers: dict[str, str] | None = None) -> Response:
        """The dialect's error body for ``status``."""

    @abstractmethod
    def too_many_requests(self, seconds: int, headers: dict[str, str]) -> Response:
        """The 429 body; ``headers`` carry ``Retry-After`` and the budget."""

    def words(self, exc: CoreError) -> str:
        template = self.WORDS.get(exc.kind) if exc.kind is not None else None
        return template.format(**exc.params) if template is not None else exc.message

    def field_errors(self, exc: ValidationFailed) -> dict[str, list[str]]:
        """``exc.errors``, a coded error's message in this dialect's words."""
        if exc.kind is None or exc.kind not in self.WORDS:
            return exc.errors
        return {field: [self.words(exc)] for field in exc.errors}

    # ------------------------------------------------------------------ core errors
    def core_error(self, path: str, exc: CoreError) -> Response:
        if isinstance(exc, NotFound):
            return self.not_found(exc)
        if isinstance(exc, Conflict):
            return self.conflict(path, exc)
        if isinstance(exc, ValidationFailed):
            return self.invalid(exc)
        return self.error(400, self.words(exc))

    def not_found(self, exc: NotFound) -> Response:
        return self.error(404, exc.message)

    def conflict(self, path: str, exc: Conflict) -> Response:
        return self.error(409, self.words(exc))

    def invalid(self, exc: ValidationFailed) -> Response:
        return self.error(422, self.words(exc), self.field_errors(exc))

    # ------------------------------------------------------------------ framework and transport errors
    def request_invalid(self, errors: dict[str, list[str]]) -> Response:
        """FastAPI's own parameter validation, ``errors`` by field in the order found."""
        return self.error(422, next(iter(errors.values()))[0], errors)

    def unauthorized(self) -> Response:
        return self.error(401, "Unauthorized")

    def forbidden(self, message: str) -> Response:
        """A valid key used beyond its scope (Mailgun answers a key lacking permission 403 ``{"message"}``)."""
        return self.error(403, message)

    def rate_limited(self, retry_after: float, limit: int, remaining: int = 0) -> Response:
        seconds = max(1, math.ceil(retry_after))
        return self.too_many_requests(seconds, {"Retry-After": str(seconds), "X-RateLimit-Limit": str(limit),
                                                "X-RateLimit-Remaining": str(remaining)})

    def http_error(self, status: int, detail: str, headers: dict[str, str]) -> Response:
        """Starlette's errors (unknown route, wrong method)."""
        return self.error(status, FRAMEWORK_MESSAGES.get(status, detail), headers=headers)

    def too_large(self, max_bytes: int) -> Response:
        return self.error(413, f"Request body larger than {max_bytes} bytes",
                          errors={"body": [f"The body may not be larger than {max_bytes} bytes."]})

    def unavailable(self, retry_after: int) -> Response:
        return self.error(503, UNAVAILABLE, headers={"Retry-After": str(retry_after)})

    def server_error(self) -> Response:
        return self.error(500, SERVER_ERROR)
