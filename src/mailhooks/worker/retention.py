"""Retention: now and then, finished deliveries (with their attempts) and the events no delivery refers to
any more, older than ``MAILHOOKS_RETENTION_DAYS``, are deleted in small batches. It runs beside the claim
loop, never inside it: deletes must not stall claims."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from mailhooks.db.queue import DeliveryQueue

log = structlog.get_logger(__name__)

RETENTION_EVERY = 60.0  # seconds between passes
RETENTION_BATCHES = 20  # at most this many purge batches per pass
FIRST_PASS_AFTER = 5.0
STOP_WAIT = 5.0  # at stop, how long a pass under way may take to finish its batch


class Retention:
    def __init__(self, queue: DeliveryQueue, retention_days: float) -> None:
        self.queue = queue
        self.keep_seconds = retention_days * 86400
        self.stopping = False
        self._next = time.time() + FIRST_PASS_AFTER
        self._task: asyncio.Task[None] | None = None

    def maybe_start(self) -> None:
        """Start a pass if one is due and none is under way (called on every turn of the claim loop)."""
        now = time.time()
        if now < self._next or (self._task is not None and not self._task.done()):
            return
        self._next = now + RETENTION_EVERY
        self._task = asyncio.create_task(self._purge(now - self.keep_seconds))

    def stop(self) -> None:
        """No more batches: a pass under way ends after its current one."""
        self.stopping = True

    async def join(self) -> None:
        """Wait for a pass under way (``STOP_WAIT`` seconds at most)."""
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, STOP_WAIT)

    async def _purge(self, cutoff: float) -> None:
        try:
            for _ in range(RETENTION_BATCHES):
                if self.stopping or not await self.queue.purge(cutoff):
                    break
                await asyncio.sleep(0.05)
        except Exception as exc:
            log.warning("retention_failed", error=repr(exc))

