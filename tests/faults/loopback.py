"""What every staged peer on 127.0.0.1 needs: a free port, and an asyncio server running in a thread of
its own (so that a synchronous test, or the chaos runner's loop, can drive it while it answers)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """Runs ``_open`` in a private event loop on a daemon thread: ``start()`` returns once it listens,
    ``stop()`` runs the closer ``_open`` returned and joins the thread."""

    def __init__(self, port: int | None = None, name: str = "loopback-server") -> None:
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    async def _open(self) -> Callable[[], Awaitable[None]]:
        """Start listening on ``self.port``; return what closes it."""
        raise NotImplementedError

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self._thread.name} did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        close = await self._open()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await close()
