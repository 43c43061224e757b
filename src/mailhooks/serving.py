"""How the API is served: uvicorn's configuration, and a deadline for request heads.

uvicorn times out idle keep-alive connections but not a request head that never completes: a client
that opens a connection and sends a header line every few seconds (slowloris) held it, and its slot,
forever. ``HeadTimeoutProtocol`` is uvicorn's httptools protocol with one more timer: armed when a
connection opens and whenever a new request begins, disarmed when the head is complete. If it fires,
the client gets ``408`` and the connection is closed (after the response in flight, when one is).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = structlog.get_logger(__name__)

_REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"content-length: 15\r\nconnection: close\r\n\r\nRequest Timeout")


class HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose request head is not complete in time."""

    head_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that never sends a byte counts too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_timer()  # for the first request the clock started at connect: it keeps running

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        log.info("request_head_timeout", client=self.client and f"{self.client[0]}:{self.client[1]}",
                 seconds=self.head_timeout)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # a pipelined head is late: close once the response in flight is sent
            return
        self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


def head_timeout_protocol(seconds: float) -> type[HeadTimeoutProtocol]:
    """The protocol class with its deadline (uvicorn instantiates the class itself, once per connection)."""
    return type("HeadTimeoutProtocol", (HeadTimeoutProtocol,), {"head_timeout": seconds})


def uvicorn_config(app: Any, host: str, port: int, head_timeout: float) -> uvicorn.Config:
    """The one uvicorn configuration every API process runs with (``serve``, ``api``, and the tests)."""
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, loop="uvloop",
                          http=head_timeout_protocol(head_timeout), timeout_graceful_shutdown=15)
