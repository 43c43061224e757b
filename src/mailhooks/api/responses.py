"""The JSON bodies the dialects answer with: Mailgun's exact encoding and the plain one.

Error responses are rendered by each dialect's object in ``api/dialects/``.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class MailgunJSON(Response):
    """Compact JSON followed by a newline, as recorded from production."""

    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content) + b"\n"


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
