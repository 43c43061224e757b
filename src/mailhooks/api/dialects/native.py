"""The native API's error shapes: ``{"message", "errors"?}``, 422 for invalid input, 409 for a conflict."""

from __future__ import annotations

from starlette.responses import Response

from mailhooks.api.dialects.base import Dialect, DialectErrors
from mailhooks.api.responses import JSON
from mailhooks.core.errors import ErrorKind


class NativeErrors(DialectErrors):
    dialect = Dialect.NATIVE
    WORDS = {ErrorKind.DELIVERY_IN_FLIGHT: "The delivery is being attempted right now"}

    def error(self, status: int, message: str, errors: dict[str, list[str]] | None = None,
              headers: dict[str, str] | None = None) -> Response:
        body: dict[str, object] = {"message": message}
        if errors is not None:
            body["errors"] = errors
        return JSON(body, status_code=status, headers=headers)

    def too_many_requests(self, seconds: int, headers: dict[str, str]) -> Response:
        return JSON({"message": "Too many requests", "retry_seconds": seconds}, status_code=429, headers=headers)
