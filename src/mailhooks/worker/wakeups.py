"""What wakes the claim loop: ``wake()`` (ingest inside ``serve``, a retry from the API, a freed slot, a
write that lifted the back-pressure), PostgreSQL ``NOTIFY`` on the ingest channel (ingest from any API
process), and otherwise the poll interval (retry-due rows, expired leases)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from mailhooks.db.database import DELIVERIES_CHANNEL
from mailhooks.db.store import Store

log = structlog.get_logger(__name__)

LISTEN_RETRY = 5.0  # seconds between attempts to re-establish LISTEN


class Wakeups:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.event = asyncio.Event()
        self._listener: Any = None  # the asyncpg connection while LISTENing
        self._next_listen = 0.0

    def wake(self) -> None:
        self.event.set()

    async def wait(self, seconds: float) -> None:
        """Until woken, or ``seconds`` at most."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), seconds)
        self.event.clear()

    async def keep_listening(self) -> None:
        """On PostgreSQL, LISTEN (at start), and again whenever the connection is gone, at most every
        ``LISTEN_RETRY`` seconds; polling covers the gap until it is back."""
        if self.store.postgres and (self._listener is None or self._listener.is_closed()) \
                and time.monotonic() >= self._next_listen:
            await self._listen()

    async def _listen(self) -> None:
        """LISTEN on the ingest channel with a dedicated connection (polling covers any gap)."""
        self._next_listen = time.monotonic() + LISTEN_RETRY
        try:
            self._listener = await self.store.listen(DELIVERIES_CHANNEL, lambda *_args: self.event.set())
        except Exception as exc:
            log.warning("dispatcher_listen_failed", error=repr(exc))
            self._listener = None

    async def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
