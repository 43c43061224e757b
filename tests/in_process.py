"""The real application inside the test process: ``mailhooks.services.web_app(settings)`` (the API as
``mailhooks api`` builds it) with its lifespan run, reached through ``httpx.ASGITransport`` instead of a
socket.

A subprocess costs a start (~2 s) and a failure there means reading its log; here a request is a function
call on the app's own event loop and a failure's traceback is the test's. The app runs on a loop of its
own, in a thread, so that ordinary synchronous tests (and SDKs built on ``requests``) can call it, and so
that its database connections and lookups live on one loop whichever test calls.

What it does not start, unless asked (``dispatcher=True``, as ``mailhooks serve`` runs it): the
dispatcher. Tests that need deliveries made use a real ``mailhooks serve`` (``tests.support.ServerProcess``)
on the same database, or that (tests/test_traces.py: spans recorded in this process).
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Coroutine, MutableMapping
from typing import Any, TypeVar

import httpx
import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3 import HTTPHeaderDict, HTTPResponse

from mailhooks.config import Settings
from mailhooks.services import web_app

T = TypeVar("T")
# The Mailgun SDK refuses cleartext HTTP to any other host; no socket is ever opened to it.
BASE_URL = "http://localhost"
PEER = ("127.0.0.1", 40000)  # the client address the app sees, as from a local client over TCP
DEADLINE = 60.0  # seconds for one request or the lifespan: a hang fails the test instead of the run


class InProcessApp:
    """``web_app(settings)`` on an event loop of its own (a daemon thread), lifespan and all."""

    base_url = BASE_URL

    def __init__(self, settings: Settings, dispatcher: bool = False) -> None:
        self.settings = settings
        self.app = web_app(settings, dispatcher=dispatcher)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="in-process-app", daemon=True)
        self._state: dict[str, Any] = {}  # the lifespan state, copied into every request (as uvicorn does)
        self._lifespan_in: asyncio.Queue[dict[str, Any]] | None = None
        self._lifespan_out: asyncio.Queue[dict[str, Any]] | None = None
        self._lifespan_task: asyncio.Task[None] | None = None
        self.transport = httpx.ASGITransport(app=self._with_state, raise_app_exceptions=False, client=PEER)

    # ------------------------------------------------------------------ lifespan
    def start(self) -> InProcessApp:
        self._thread.start()
        self.run(self._lifespan("startup"))
        return self

    def stop(self) -> None:
        try:
            self.run(self._lifespan("shutdown"))
        finally:
            self.run(self._cancel_leftovers())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=DEADLINE)
            self.loop.close()

    async def _lifespan(self, phase: str) -> None:
        """One phase of the ASGI lifespan protocol, the way a server drives it."""
        if self._lifespan_task is None:
            self._lifespan_in, self._lifespan_out = asyncio.Queue(), asyncio.Queue()
            scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self._state}
            self._lifespan_task = asyncio.ensure_future(
                self.app(scope, self._lifespan_in.get, self._lifespan_out.put))  # type: ignore[arg-type]
        assert self._lifespan_in is not None and self._lifespan_out is not None
        await self._lifespan_in.put({"type": f"lifespan.{phase}"})
        answer = asyncio.ensure_future(self._lifespan_out.get())
        await asyncio.wait([answer, self._lifespan_task], return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            answer.cancel()
            self._lifespan_task.result()  # the app ended its lifespan without answering: raise what it raised
            raise RuntimeError(f"the app ended its lifespan during {phase}")
        message = answer.result()
        if message["type"] != f"lifespan.{phase}.complete":
            raise RuntimeError(f"lifespan {phase} failed: {message.get('message', message)}")
        if phase == "shutdown":
            await self._lifespan_task

    @staticmethod
    async def _cancel_leftovers() -> None:
        """Whatever the app left running after its shutdown (none expected) ends before the loop does."""
        leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_asyncgens()

    async def _with_state(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope["state"] = dict(self._state)
        await self.app(scope, receive, send)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the app's loop and wait for it (from any thread but the app's)."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(DEADLINE)

    # ------------------------------------------------------------------ clients
    async def exchange(self, request: httpx.Request, chunks: list[bytes]) -> httpx.Response:
        """One request through ``httpx.ASGITransport`` on the app's loop; the body is sent as the caller
        streamed it (no Content-Length is added to a chunked body), the answer is read whole."""
        inner = httpx.Request(request.method, request.url, headers=request.headers, stream=_Replay(chunks),
                              extensions=request.extensions)
        answer = await self.transport.handle_async_request(inner)
        body = await answer.aread()
        return httpx.Response(answer.status_code, headers=answer.headers, stream=httpx.ByteStream(body),
                              extensions=answer.extensions)

    def client(self, auth: tuple[str, str] | None = None, **kwargs: Any) -> httpx.Client:
        """A synchronous httpx client reaching the app (use it as a context manager)."""
        return httpx.Client(transport=_SyncBridge(self), base_url=self.base_url, auth=auth, **kwargs)

    def async_client(self, auth: tuple[str, str] | None = None, **kwargs: Any) -> httpx.AsyncClient:
        """An httpx client for any other event loop: its requests run concurrently on the app's loop."""
        return httpx.AsyncClient(transport=_AsyncBridge(self), base_url=self.base_url, auth=auth, **kwargs)

    def requests_adapter(self) -> BaseAdapter:
        """For SDKs built on ``requests``: mount it on their session, and the bytes they prepared reach the app."""
        return _RequestsBridge(self)


class _Replay(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


class _SyncBridge(httpx.BaseTransport):
    def __init__(self, target: InProcessApp) -> None:
        self._target = target

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        chunks = [bytes(chunk) for chunk in request.stream]
        return self._target.run(self._target.exchange(request, chunks))


class _AsyncBridge(httpx.AsyncBaseTransport):
    def __init__(self, target: InProcessApp) -> None:
        self._target = target

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        chunks = [bytes(chunk) async for chunk in request.stream]
        done = asyncio.run_coroutine_threadsafe(self._target.exchange(request, chunks), self._target.loop)
        return await asyncio.wait_for(asyncio.wrap_future(done), DEADLINE)


class _RequestsBridge(HTTPAdapter):
    """A ``requests`` transport adapter: the prepared request (method, URL, headers, body bytes) goes to the
    app unchanged; the answer comes back through requests' own ``build_response``, as from a socket."""

    def __init__(self, target: InProcessApp) -> None:
        super().__init__()
        self._client = target.client()

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        body = request.body.encode() if isinstance(request.body, str) else request.body
        assert request.method is not None and request.url is not None
        answer = self._client.request(request.method, request.url, headers=dict(request.headers), content=body)
        raw = HTTPResponse(body=io.BytesIO(answer.content), headers=HTTPHeaderDict(answer.headers.multi_items()),
                           status=answer.status_code, reason=answer.reason_phrase, version=11,
                           preload_content=False, decode_content=False, request_method=request.method)
        return self.build_response(request, raw)

    def close(self) -> None:
        self._client.close()
        super().close()
