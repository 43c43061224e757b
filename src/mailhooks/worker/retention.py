"""Retention: finished deliveries (with their attempts) and the events no delivery refers to any more, older
than ``MAILHOOKS_RETENTION_DAYS``, are deleted beside the claim loop, never inside it.

A pass starts every ``RETENTION_EVERY`` seconds and goes on, batch after batch, until nothing is left to
delete, so that retention keeps up with any delivery rate. It stays gentle with live work by pacing itself
on what its own batches cost: each batch is one short transaction sized to take about its backend's target
time (``Pace``), and after each it pauses long enough that purging takes at most ``DUTY`` of the time. On
PostgreSQL only one process purges at a time (``DeliveryQueue.retention_turn``): several workers would
otherwise contend.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import structlog

from mailhooks.db.queue import DeliveryQueue

log = structlog.get_logger(__name__)

RETENTION_EVERY = 60.0  # seconds between the starts of passes
FIRST_PASS_AFTER = 5.0
STOP_WAIT = 5.0  # at stop, how long a pass under way may take to finish its batch
DUTY = 0.25  # the share of the time a pass spends in purge transactions, at most


@dataclass(frozen=True)
class Pace:
    """A backend's batch sizing: the time one purge transaction should take, and rows per batch (the first,
    and the bounds of the adaptation). Each batch pays a fixed cost (round trips, a commit), which the
    floor keeps small beside its rows even on a loaded machine."""

    batch_seconds: float
    first: int
    least: int
    most: int = 5000


# SQLite: the single writer, which every ingest and result write waits for, is held this long at most.
SQLITE_PACE = Pace(batch_seconds=0.02, first=200, least=50)
# PostgreSQL: a batch locks only finished rows, which live work never touches. 50 ms: in `make bench`'s retention
# scenario (1,000,000 rows, 200 live events/s) 250 ms batches made the live p99 4.45x the quiet one, 50 ms 3.22x,
# while still purging 3,400 rows/s.
POSTGRES_PACE = Pace(batch_seconds=0.05, first=500, least=100)


def next_batch(batch: int, took: float, pace: Pace = SQLITE_PACE) -> int:
    """The size of the next batch, given that ``batch`` rows took ``took`` seconds: moved towards the size that
    takes ``pace.batch_seconds``, at most doubled or halved at a time (one slow batch, e.g. behind a live
    write, must not swing it)."""
    wanted = batch * pace.batch_seconds / max(took, 1e-4)
    return max(pace.least, min(pace.most, int(min(2 * batch, max(batch / 2, wanted)))))


def pause_after(took: float) -> float:
    """Seconds to wait after a batch that took ``took`` seconds, so that purging keeps to ``DUTY``."""
    return took * (1 - DUTY) / DUTY


class Retention:
    def __init__(self, queue: DeliveryQueue, retention_days: float, postgres: bool = False) -> None:
        self.queue = queue
        self.pace = POSTGRES_PACE if postgres else SQLITE_PACE
        self.keep_seconds = retention_days * 86400
        self._stopped = asyncio.Event()  # set at stop: no more batches, and a pass wakes out of its pause
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
        self._stopped.set()

    @property
    def stopping(self) -> bool:
        return self._stopped.is_set()

    async def join(self) -> None:
        """Wait for a pass under way (``STOP_WAIT`` seconds at most)."""
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, STOP_WAIT)

    async def purge(self, cutoff: float) -> None:
        """One pass: everything finished before ``cutoff``, paced, unless another process is purging."""
        batch, started, purged = self.pace.first, time.monotonic(), 0
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
                    batch = next_batch(batch, took, self.pace)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopped.wait(), pause_after(took))
        except Exception as exc:
            log.warning("retention_failed", error=repr(exc))
        finally:
            self.purged += purged
            if purged:
                log.info("retention_pass", purged=purged, seconds=round(time.monotonic() - started, 1))
