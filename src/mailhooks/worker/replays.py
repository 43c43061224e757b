"""The replay runner: beside the dispatcher (in ``worker`` and in ``serve``), it takes replays and back-fills
(``core.replays``) one at a time and works through each in small batches.

- **One worker per replay.** A replay is claimed under a lease renewed by every batch; a worker that
  stops hands it back, one that crashes loses it when the lease runs out, and either way the next worker
  resumes at the stored cursor.
- **Live traffic first.** At most ``MAILHOOKS_REPLAY_RATE`` rows a second are queued, in batches of
  ``MAILHOOKS_REPLAY_BATCH``. A batch is queued only while fewer than ``BACKLOG_BATCHES`` batches' worth of
  rows are due, and its rows fall due ``DUE_DELAY`` after queueing: events arriving meanwhile are due
  earlier and claimed first. A million-row replay thus runs at the pace the dispatchers leave free.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog

from mailhooks.core.replays import BACKLOG_BATCHES, DUE_DELAY, ReplayJob, ReplayState
from mailhooks.db.database import Database
from mailhooks.db.replays import LostLease, ReplayStore

log = structlog.get_logger(__name__)

LOOK_EVERY = 1.0  # seconds between looks for a replay to run, when none is under way
LEASE_SECONDS = 30.0
BACKLOG_WAIT = 0.05  # seconds between looks at the due backlog while it is too long for another batch
STOP_WAIT = 5.0
MAX_WIDENING = 32  # a window through rows that do not match grows up to this many batches' worth of ids


class ReplayRunner:
    def __init__(self, db: Database, owner: str, batch_size: int, rate: float, wake: Callable[[], None]) -> None:
        self.store = ReplayStore(db)
        self.owner = owner
        self.batch_size = max(1, batch_size)
        self.seconds_per_row = 1.0 / rate if rate > 0 else 0.0
        self.wake = wake  # the dispatcher's: a batch is queued
        self.stopping = False
        self._stopped = asyncio.Event()  # ends the waits between looks at once
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mailhooks-replays")

    async def stop(self) -> None:
        """No more batches; a replay under way is handed back after its current batch."""
        self.stopping = True
        self._stopped.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, STOP_WAIT)
            except (Exception, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await self._task

    async def _run(self) -> None:
        while not self.stopping:
            try:
                job = await self.store.claim(self.owner, LEASE_SECONDS)
            except Exception as exc:  # the database may be down: look again later
                log.warning("replay_claim_failed", error=repr(exc)[:300])
                job = None
            if job is None:
                await self._sleep(LOOK_EVERY)
                continue
            await self._drive(job)

    async def _drive(self, job: ReplayJob) -> None:
        log.info("replay_running", replay=job.id, cursor=job.cursor)
        try:
            if await self.store.target_gone(job):
                await self.store.finish(job, self.owner, ReplayState.FAILED, "The target subscription was deleted.")
                return
            if job.cursor is None:
                job = await self.store.begin(job, self.owner, LEASE_SECONDS)
            window = self.batch_size
            while not job.finished:
                if self.stopping:
                    await self.store.release(job, self.owner)
                    return
                if not await self._room_for_a_batch(job):
                    continue
                started = time.monotonic()
                job, queued, matched = await self.store.step(job, self.owner, window, time.time() + DUE_DELAY,
                                                             LEASE_SECONDS)
                # Through a stretch of other rows (other domains, other times), wider windows; back to a
                # batch's width as soon as the range's rows show up again.
                window = self.batch_size if matched else min(window * 2, self.batch_size * MAX_WIDENING)
                if queued:
                    self.wake()
                    # The pace: at most ``rate`` rows a second, however fast the dispatchers could go.
                    await self._pace(job, queued * self.seconds_per_row - (time.monotonic() - started))
            await self.store.finish(job, self.owner, ReplayState.DONE)
            log.info("replay_done", replay=job.id)
        except LostLease:
            log.warning("replay_lease_lost", replay=job.id)
        except Exception as exc:  # left as it is: the lease runs out and a worker resumes it at the cursor
            log.warning("replay_batch_failed", replay=job.id, error=repr(exc)[:300])
            await self._sleep(LOOK_EVERY)

    async def _room_for_a_batch(self, job: ReplayJob) -> bool:
        """Wait (keeping the lease) until the due backlog is short enough for another batch; ``False``
        when stopping meanwhile."""
        cap = self.batch_size * BACKLOG_BATCHES
        renewed = time.monotonic()
        while await self.store.due_backlog(DUE_DELAY, cap) >= cap:
            if self.stopping:
                return False
            if time.monotonic() - renewed > LEASE_SECONDS / 3:
                await self.store.renew(job, self.owner, LEASE_SECONDS)
                renewed = time.monotonic()
            await asyncio.sleep(BACKLOG_WAIT)
        return True

    async def _pace(self, job: ReplayJob, seconds: float) -> None:
        """Wait ``seconds`` (cut short by a stop), renewing the lease on a long wait (a slow rate)."""
        until = time.monotonic() + seconds
        while not self.stopping and (left := until - time.monotonic()) > 0:
            await self._sleep(min(left, LEASE_SECONDS / 3))
            if until - time.monotonic() > 0:
                await self.store.renew(job, self.owner, LEASE_SECONDS)

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)
