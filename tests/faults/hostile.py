"""A webhook receiver that answers hostile bytes, for the tests and for ``make chaos``.

``HostileReceiver`` is a raw asyncio server on 127.0.0.1 in a background thread (raw, so that it can
write what no well-behaved HTTP library would: NUL bytes in a reason phrase, control bytes in a
header, a body that never ends). The first path segment of the URL picks the behaviour, the second
the status code, so one receiver serves every mode at once::

    receiver = HostileReceiver().start()
    url = receiver.url(Hostility.NUL_BODY, status=200)   # http://127.0.0.1:PORT/nul-body/200/<tag>
    ...
    receiver.arrivals(url)       # requests that reached this URL (each one is one send attempt)
    receiver.stop()

Every request is read in full (head and ``Content-Length`` body) and counted before the answer is
written, so a count of arrivals is a count of attempts, whatever the answer does to the client.
Plain class with ``start()``/``stop()``, importable without pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tests.faults.loopback import ServerThread


class Hostility(enum.StrEnum):
    NUL_BODY = "nul-body"  # NUL bytes in the first KB of the body (PostgreSQL refuses them in text)
    INVALID_UTF8 = "invalid-utf8"  # a body that is not UTF-8 at all
    HUGE_BODY = "huge-body"  # 64 MiB of body (only the first KB may be read)
    ENDLESS_BODY = "endless-body"  # a chunked body that never ends: a chunk every 50 ms, forever
    SILENT_BODY = "silent-body"  # the head, then silence: the body never starts
    NUL_REASON = "nul-reason"  # a NUL and control bytes in the reason phrase
    CONTROL_HEADER = "control-header"  # a header value with a NUL and control bytes
    BINARY_HEADER = "binary-header"  # header values that are not UTF-8 (Retry-After among them)
    GARBAGE = "garbage"  # not HTTP at all: binary bytes with NULs instead of a status line
    NO_ANSWER = "no-answer"  # reads the request, then never writes anything


HUGE_BYTES = 64 * 1024 * 1024
_NUL_BODY = b'{"ok":\x00"yes"}\x00\x00' + b"\x00\x01\x02\x1b[31m" * 20
# Stray continuation bytes, truncated sequences, and an encoded surrogate (not valid UTF-8 either).
_INVALID_UTF8 = b"\xff\xfe\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc" * 8 + b"\xed\xa0\x80"
_CHUNK = b"\x00" * 64


@dataclass(frozen=True, slots=True)
class Arrival:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float



class HostileReceiver(ServerThread):
    """A raw HTTP/1.1 receiver on 127.0.0.1 whose answers are chosen by the URL (see the module doc)."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port, name="hostile-receiver")
        self._arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        self._handlers: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ for the caller
    def url(self, mode: Hostility, status: int = 200, tag: str | None = None) -> str:
        """A URL of its own (``tag`` defaults to a fresh one) answering ``mode`` with ``status``."""
        return f"http://127.0.0.1:{self.port}/{mode.value}/{status}/{tag or uuid.uuid4().hex[:10]}"

    def arrivals(self, url_or_path: str | None = None) -> list[Arrival]:
        """Requests received (for one URL or path, or all of them), in arrival order."""
        path = None if url_or_path is None else "/" + url_or_path.split("://", 1)[-1].split("/", 1)[-1]
        with self._lock:
            return [a for a in self._arrivals if path is None or a.path == path]

    def start(self) -> HostileReceiver:
        super().start()
        return self

    # ------------------------------------------------------------------ the server
    async def _open(self) -> Callable[[], Awaitable[None]]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, limit=1 << 20)

        async def close() -> None:
            server.close()
            for task in list(self._handlers):  # the endless and silent answers end here
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await server.wait_closed()

        return close

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:  # keep-alive: the client may send several requests on one connection
                if not await self._one(reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                asyncio.CancelledError):
            pass  # the client went away (or the receiver is stopping): nothing to answer
        finally:
            self._handlers.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        _method, target, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        with self._lock:
            self._arrivals.append(Arrival(target, headers, body, time.time()))
        parts = target.strip("/").split("/")
        try:
            mode = Hostility(parts[0])
            status = int(parts[1]) if len(parts) > 1 else 200
        except ValueError:
            mode, status = None, 200
        return await self._answer(mode, status, writer)

    async def _answer(self, mode: Hostility | None, status: int, writer: asyncio.StreamWriter) -> bool:
        """Write the answer; ``True`` to keep the connection for another request."""
        start = f"HTTP/1.1 {status} Hostile\r\n".encode()

        def fixed(body: bytes, extra: bytes = b"", status_line: bytes = start) -> bytes:
            return status_line + extra + f"Content-Length: {len(body)}\r\n\r\n".encode() + body

        if mode is Hostility.NUL_BODY or mode is None:
            writer.write(fixed(_NUL_BODY if mode else b"ok", b"Content-Type: application/json\r\n"))
        elif mode is Hostility.INVALID_UTF8:
            writer.write(fixed(_INVALID_UTF8, b"Content-Type: text/plain; charset=utf-8\r\n"))
        elif mode is Hostility.HUGE_BODY:
            writer.write(start + f"Content-Length: {HUGE_BYTES}\r\n\r\n".encode())
            block = b"A\x00" * 32768
            for _ in range(HUGE_BYTES // len(block)):
                writer.write(block)
                await writer.drain()  # the client closing early ends this with ConnectionError
            return True
        elif mode is Hostility.ENDLESS_BODY:
            writer.write(start + b"Transfer-Encoding: chunked\r\n\r\n")
            while True:
                writer.write(f"{len(_CHUNK):x}\r\n".encode() + _CHUNK + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
        elif mode is Hostility.SILENT_BODY:
            writer.write(start + b"Content-Length: 100\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(3600)
        elif mode is Hostility.NUL_REASON:
            writer.write(fixed(b"ok", status_line=f"HTTP/1.1 {status} O\x00K\x01\x1b[0m\xff\r\n".encode("latin-1")))
        elif mode is Hostility.CONTROL_HEADER:
            writer.write(fixed(b"ok", b"X-Evil: a\x00b\x01c\x1b[31m\r\nRetry-After: 1\x00\r\n"))
        elif mode is Hostility.BINARY_HEADER:
            writer.write(fixed(b"ok", b"X-Evil: \xff\xfe\xed\xa0\x80\r\nRetry-After: \xff\xfe\r\n"))
        elif mode is Hostility.GARBAGE:
            writer.write(b"\x00\xff\xfeHTTP\x00/1.1 200\x00\xed\xa0\x80\r\n\r\n")
            await writer.drain()
            return False
        elif mode is Hostility.NO_ANSWER:
            await asyncio.sleep(3600)
        await writer.drain()
        return True
