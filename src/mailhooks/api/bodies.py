"""Request-body parsing with errors the edges can render in their own dialect."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailhooks.api.dialects import errors_for
from mailhooks.core.errors import ValidationFailed
from mailhooks.core.nesting import TOO_DEEP, is_recursion_error, too_deep


class BadBody(ValidationFailed):
    """The body could not be read at all (encoding, syntax, content type)."""

    def __init__(self, message: str) -> None:
        super().__init__({"body": [message]}, message)


class Form:
    """Repeated fields as lists, like Mailgun's ``url=a&url=b``."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.items if key == name]

    def get(self, name: str) -> str | None:
        values = self.getlist(name)
        return values[0] if values else None

    def keys(self) -> set[str]:
        return {key for key, _ in self.items}


async def read_form(request: Request, query_too: bool = False) -> Form:
    """Parse ``application/x-www-form-urlencoded`` or ``multipart/form-data`` (an empty body is an empty form)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    items: list[tuple[str, str]] = []
    if query_too:
        items.extend(request.query_params.multi_items())
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=0, max_fields=1000)
        except Exception as exc:  # starlette raises several types for broken multipart
            raise BadBody(f"Malformed multipart body: {exc}") from exc
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                raise BadBody("File uploads are not accepted here")
            items.append((key, value))
        return Form(items)
    body = await request.body()
    if not body.strip():
        return Form(items)
    if content_type in ("application/x-www-form-urlencoded", ""):
        try:
            text = body.decode("utf-8")
            items.extend(parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadBody("The body is not valid UTF-8 form data") from exc
        return Form(items)
    raise BadBody(f"Unsupported Content-Type '{content_type}': send application/x-www-form-urlencoded or "
                  "multipart/form-data")


async def read_json(request: Request, allow_empty: bool = False) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if not body.strip():
        if allow_empty:
            return {}
        raise BadBody("The request body must be a JSON object.")
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise BadBody(f"Unsupported Content-Type '{content_type}': send application/json")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if is_recursion_error(str(exc)):
            raise BadBody(TOO_DEEP) from exc
        raise BadBody(f"The request body is not valid JSON: {exc}") from exc
    if too_deep(document) is not None:
        raise BadBody(TOO_DEEP)
    return document


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with 413 in the caller's dialect, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._refuse(path, scope, receive, send)
                    return
        seen = 0
        started = False
        too_big = False

        async def limited_receive() -> Message:
            nonlocal seen, too_big
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_big = True
                    raise _TooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(path, scope, receive, send)
        except Exception:
            if too_big and not started:
                await self._refuse(path, scope, receive, send)
            else:
                raise

    async def _refuse(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        await errors_for(path).too_large(self.max_bytes)(scope, receive, send)


class _TooLarge(Exception):
    pass


def as_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadBody("The request body must be a JSON object.")
    return value
