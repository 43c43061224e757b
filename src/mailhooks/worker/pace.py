"""Pace and order per subscription, in the worker: claimed jobs of a subscription with a rate limit or
FIFO ordering pass the database's gate (``db.queue.pace``) before they go to the lanes.

- Jobs of every other subscription go straight through: ``admit`` only looks at each job's settings,
  which are the one shared default object for a subscription without settings.
- A job admitted for a start a little later (its rate's next slot) waits here on a timer, leased.
- After a FIFO job is sent, and its result written, the next delivery of its subscription is un-parked;
  every ``SWEEP_EVERY`` seconds a sweep does the same for a worker that died in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog

from mailhooks.config import Settings
from mailhooks.core.deliveries import Claimed
from mailhooks.core.payloads import PreparedEvent
from mailhooks.core.subscriptions import DEFAULT_SETTINGS, Ordering
from mailhooks.db.queue.pace import PaceGate, needs_pace
from mailhooks.db.store import Store
from mailhooks.worker.writer import ResultWriter

log = structlog.get_logger(__name__)

SWEEP_EVERY = 5.0
START_NOW = 0.005  # a start this close is not worth a timer
WRITE_WAIT = 0.002  # how often the FIFO follow-up looks whether the writer has saved the head's result
FOLLOW_UP_FOR = 2.0  # how long it keeps trying before leaving it to the sweep


def horizon(settings: Settings) -> float:
    """How far ahead a rate-limited job may be admitted: rows spread 1/r apart come due between two
    polls, so the horizon covers a poll interval (with room), and stays well inside the lease."""
    return min(max(1.0, 2 * settings.poll_interval), settings.lease_seconds / 4)


def _paced(job: Claimed) -> bool:
    """A job for the gate (one of a deleted or disabled subscription is finished unsent at once)."""
    return needs_pace(job.settings) and not job.webhook_deleted and job.webhook_disabled_reason is None


class Pacer:
    def __init__(self, store: Store, owner: str, settings: Settings, writer: ResultWriter,
                 start: Callable[[list[Claimed]], None],
                 send: Callable[[Claimed, PreparedEvent], Awaitable[None]], wake_claims: Callable[[], None]) -> None:
        """``start`` hands jobs on to be prepared and queued on their lanes; ``send`` makes the attempt;
        ``wake_claims`` makes the claim loop look for due rows now (an un-parked FIFO head)."""
        self.gate = PaceGate(store)
        self._send = send
        self._wake_claims = wake_claims
        self.owner = owner
        self.horizon = horizon(settings)
        self.writer = writer
        self._start = start
        self._waiting: dict[int, tuple[asyncio.TimerHandle, Claimed]] = {}  # admitted for a later start
        self._to_advance: dict[int, int] = {}  # FIFO webhook -> its delivery just sent
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mailhooks-pacer")

    async def admit(self, batch: list[Claimed]) -> list[Claimed]:
        """The jobs of ``batch`` to start now; paced jobs admitted for later wait on a timer, and the
        refused ones are back in the queue."""
        paced = [job for job in batch if job.settings is not DEFAULT_SETTINGS and _paced(job)]
        if not paced:
            return batch  # the common case: one identity test per job
        now_jobs = [job for job in batch if job.settings is DEFAULT_SETTINGS or not _paced(job)]
        loop = asyncio.get_running_loop()
        for admitted in await self.gate.admit(self.owner, paced, self.horizon):
            delay = admitted.start_at - time.time()
            if delay <= START_NOW:
                now_jobs.append(admitted.job)
                continue
            job = admitted.job
            self._waiting[job.id] = (loop.call_later(delay, self._start_waiting, job.id), job)
        return now_jobs

    async def send(self, job: Claimed, prepared: PreparedEvent) -> None:
        """The attempt, then (FIFO) the follow-up that lets the subscription's next delivery go."""
        await self._send(job, prepared)
        if job.settings.ordering == Ordering.FIFO:
            self._to_advance[job.webhook_id] = job.id
            self._wake.set()

    async def stop(self) -> None:
        """Hand back the jobs still waiting for their start; stop the follow-ups."""
        for handle, job in self._waiting.values():
            handle.cancel()
            self.writer.release(job.id)
        self._waiting.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _start_waiting(self, delivery_id: int) -> None:
        entry = self._waiting.pop(delivery_id, None)
        if entry is not None:
            self._start([entry[1]])

    async def _run(self) -> None:
        next_sweep = time.monotonic() + SWEEP_EVERY
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_sweep - time.monotonic()))
            self._wake.clear()
            try:
                if self._to_advance:
                    await self._advance()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + SWEEP_EVERY
                    await self.gate.sweep()
            except Exception as exc:  # the database may be down: the sweep repairs what was missed
                log.warning("pace_follow_up_failed", error=repr(exc)[:300])
                await asyncio.sleep(1.0)

    async def _advance(self) -> None:
        """Once the writer has saved what was sent (the head is finished or waits for its retry), the
        next deliveries of those FIFO subscriptions are un-parked. One still in flight (another worker's,
        or a result the writer holds back) is tried again a little later, then left to the sweep."""
        sent, self._to_advance = self._to_advance, {}
        deadline = time.monotonic() + FOLLOW_UP_FOR
        ids = set(sent.values())
        for _ in range(int(FOLLOW_UP_FOR / WRITE_WAIT)):  # polled: the writer has no per-row signal
            if not self._unsaved(ids) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(WRITE_WAIT)
        webhooks = set(sent)
        delay = 4 * WRITE_WAIT
        while webhooks:
            busy = await self.gate.advance(webhooks)
            if len(busy) < len(webhooks):
                self._wake_claims()
            webhooks = busy
            if not webhooks or time.monotonic() + delay > deadline:
                return
            await asyncio.sleep(delay)
            delay *= 2

    def _unsaved(self, delivery_ids: set[int]) -> bool:
        writer = self.writer
        return bool(writer.saving or writer.releases) or any(o.delivery_id in delivery_ids for o in writer.outcomes)
