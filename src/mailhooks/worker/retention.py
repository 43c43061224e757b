"""Retention: finished deliveries (with their attempts) and the events no delivery refers to any more, older
than ``MAILHOOKS_RETENTION_DAYS``, are deleted beside the claim loop, never inside it.

A pass starts every ``RETENTION_EVERY`` seconds and goes on, batch after batch, until nothing is left to
delete, so that retention keeps up with any delivery rate. It stays gentle with live work by pacing itself
on what its own batches cost: each batch is sized to take about a target time (one short transaction: on
SQLite the single writer, which every ingest and result write waits for, is held ``SQLITE_BATCH_SECONDS``
at most; on PostgreSQL it locks only finished rows, which live work never touches, so batches may be longer
and pay their commit and round trips less often), and after each it pauses long enough that purging takes
at most ``DUTY`` of the time. On PostgreSQL only one
process purges at a time (``DeliveryQueue.retention_turn``): several workers would otherwise contend.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from mailhooks.db.queue import DeliveryQueue

log = structlog.get_logger(__name__)

RETENTION_EVERY = 60.0  # seconds between the starts of passes
FIRST_PASS_AFTER = 5.0
STOP_WAIT = 5.0  # at stop, how long a pass under way may take to finish its batch
SQLITE_BATCH_SECONDS = 0.02  # the time one purge transaction should take (SQLite: the writer is held)
POSTGRES_BATCH_SECONDS = 0.1
DUTY = 0.25  # the share of the time a pass spends in purge transactions, at most
FIRST_BATCH, MIN_BATCH, MAX_BATCH = 200, 50, 5000  # rows per batch: the start, and the bounds of the adaptation


def next_batch(batch: int, took: float, target: float = SQLITE_BATCH_SECONDS) -> int:
    """The size of the next batch, given that ``batch`` rows took ``took`` seconds: moved towards the size that
    takes ``target`` seconds, at most doubled or halved at a time (one slow batch, e.g. behind a live write,
    must not swing it)."""
    wanted = batch * target / max(took, 1e-4)
    return max(MIN_BATCH, min(MAX_BATCH, int(min(2 * batch, max(batch / 2, wanted)))))


def pause_after(took: float) -> float:
    """Seconds to wait after a batch that took ``took`` seconds, so that purging keeps to ``DUTY``."""
    return took * (1 - DUTY) / DUTY


class Retention:
    def __init__(self, queue: DeliveryQueue, retention_days: float, postgres: bool = False) -> None:
        self.queue = queue
        self.batch_seconds = POSTGRES_BATCH_SECONDS if postgres else SQLITE_BATCH_SECONDS
        self.keep_seconds = retention_days * 86400
        self.stopping = False
        self.purged = 0  # rows deleted by this process so far
        self._next = time.time() + FIRST_PASS_AFTER
        self._task: asyncio.Task[None] | None = None

    def maybe_start(self) -> None:
        """Start a pass if one is due and none is under way (called on every turn of the claim loop)."""
        now = time.time()
        if now < self._next or (self._task is not None and not self._task.done()):
            return
        self._next = now + RETENTION_EVERY
        self._task = asyncio.create_task(self.purge(now - self.keep_seconds))

    def stop(self) -> None:
        """No more batches: a pass under way ends after its current one."""
        self.stopping = True

    async def join(self) -> None:
        """Wait for a pass under way (``STOP_WAIT`` seconds at most)."""
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, STOP_WAIT)

    async def purge(self, cutoff: float) -> None:
        """One pass: everything finished before ``cutoff``, paced, unless another process is purging."""
        batch, started, purged = FIRST_BATCH, time.monotonic(), 0
        try:
            async with self.queue.retention_turn() as mine:
                if not mine:
                    return
                while not self.stopping:
                    began = time.monotonic()
                    gone = await self.queue.purge(cutoff, batch)
                    took = time.monotonic() - began
                    purged += gone
                    if not gone:
                        break
                    batch = next_batch(batch, took, self.batch_seconds)
                    await asyncio.sleep(pause_after(took))
        except Exception as exc:
            log.warning("retention_failed", error=repr(exc))
        finally:
            self.purged += purged
            if purged:
                log.info("retention_pass", purged=purged, seconds=round(time.monotonic() - started, 1))
