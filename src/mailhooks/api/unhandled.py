"""Unexpected errors answered in the caller's dialect on a connection that stays open.

Starlette's outermost ``ServerErrorMiddleware`` sends its 500 and then re-raises, and uvicorn closes
the connection of any request whose application raised: every 500 cost the client its keep-alive
connection (and the pooled SDKs a reconnect, or a "connection reset" where the 500 came mid-pool).
This middleware sits just inside it, catches, lets ``answer`` log once and build the response, and
returns normally, so the connection is reused. An error raised after the response has started cannot
be answered any more: that one still propagates and uvicorn closes the connection, the only honest end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Answer = Callable[[Request, Exception], Awaitable[Response]]


class AnswerUnexpectedErrors:
    def __init__(self, app: ASGIApp, answer: Answer) -> None:
        self.app = app
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            response = await self.answer(Request(scope, receive), exc)
            await response(scope, receive, send)
