"""The dispatcher: a pipeline over typed stages, claimed -> sent -> outcome, in one process.

1. **Claim** (this module): the claim loop leases up to ``MAILHOOKS_WORKER_BATCH`` due rows
   (``Claimed``) at a time while fewer than ``MAILHOOKS_WORKER_CONCURRENCY`` are in flight and the
   writer is not holding claims back. It wakes on ``worker.wakeups`` (ingest, PostgreSQL ``NOTIFY``, a
   freed slot) and otherwise every ``MAILHOOKS_POLL_INTERVAL`` seconds (retry-due rows, expired leases).
   Each claimed payload is parsed once per event and rendered once per payload format; a row whose
   webhook was deleted or disabled since it was queued is finished at once (``core.outcomes``).
2. **Lanes** (``worker.lanes``): each URL's jobs wait in its queue for one of at most
   ``MAILHOOKS_PER_URL_CONCURRENCY`` lane tasks. URLs at their cap are skipped by the next claims
   (looking at a bounded head of the queue, and at all of it at most every ``FULL_SCAN_EVERY`` seconds).
3. **Send** (``worker.attempts``): the lease check, the signed POST, and the send result made an
   ``Outcome`` by the pure rules of ``core.outcomes``.
   Before that, jobs of a subscription with a rate limit or FIFO ordering pass ``worker.pace``.
4. **Write** (``worker.writer``): outcomes and hand-backs written in one transaction per batch, with
   bad rows isolated and back-pressure on the claims; ``worker.retention`` deletes old rows beside it.

SIGTERM stops the claims, lets in-flight sends finish for a short grace period, releases the rest, and
flushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from typing import Any

import orjson
import structlog

from mailhooks import tracing
from mailhooks.config import Settings
from mailhooks.core.deliveries import Claimed
from mailhooks.core.outcomes import unsent_outcome
from mailhooks.core.payloads import PreparedEvent
from mailhooks.core.targets import TargetPolicy
from mailhooks.db.queue import delivery_queue
from mailhooks.db.store import Store
from mailhooks.worker.attempts import Attempts
from mailhooks.worker.health import LoopHealth
from mailhooks.worker.lanes import Job, Lanes
from mailhooks.worker.pace import Pacer
from mailhooks.worker.retention import Retention
from mailhooks.worker.wakeups import Wakeups
from mailhooks.worker.writer import ResultWriter

log = structlog.get_logger(__name__)

# While some URLs are at their cap, claims skip their rows but look only at the first HEAD_WINDOW x batch
# due rows (a bounded scan however large the backlog); at most every FULL_SCAN_EVERY seconds a claim looks
# through the whole queue, so that other endpoints' rows behind a slow one's backlog still go out.
HEAD_WINDOW = 8
FULL_SCAN_EVERY = 1.0


def _budget(settings: Settings) -> tuple[int, int, int]:
    """(deliveries in flight at most, rows per claim at most, free slots worth a claim): claims wait until
    a quarter of a batch is free, or nothing is in flight, so that they stay few and large."""
    capacity, batch_size = max(1, settings.worker_concurrency), max(1, settings.worker_batch_size)
    return capacity, batch_size, max(1, min(batch_size, capacity) // 4)


class Dispatcher:
    def __init__(self, store: Store, settings: Settings, policy: TargetPolicy) -> None:
        self.settings = settings
        self.queue = tracing.traced_queue(delivery_queue(store))  # traces on: claim and record spans
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.health = LoopHealth(settings.poll_interval)
        self.wakeups = Wakeups(store)
        self.writer = ResultWriter(self.queue, self.owner, settings, self.health, self.wakeups.event.set)
        self.attempts = Attempts(settings, policy, self.writer, store)
        self.pacer = Pacer(store, self.owner, settings, self.writer, self._start, self.attempts.send,
                           self.wakeups.event.set)
        capacity, _, claim_at = _budget(settings)
        self.lanes = Lanes(max(1, settings.per_url_concurrency), capacity - claim_at,
                           self.pacer.send, self.writer.release, self.wakeups.event.set)
        self.retention = Retention(self.queue, settings.retention_days, store.postgres)
        self._loop_task: asyncio.Task[None] | None = None
        self._next_full_scan = 0.0

    @property
    def stopping(self) -> bool:
        return self.attempts.stopping  # one flag: the attempts hand back every job not sent once set

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.attempts.start()
        await self.wakeups.keep_listening()
        self.writer.start()
        self.pacer.start()
        self._loop_task = asyncio.create_task(self._claim_loop(), name="mailhooks-dispatcher")
        capacity, batch_size, _ = _budget(self.settings)
        log.info("dispatcher_started", owner=self.owner, capacity=capacity, batch=batch_size)

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming, let in-flight sends finish for ``grace`` seconds, release the rest, flush."""
        self.attempts.stopping = True
        self.retention.stop()
        self.wakeups.wake()
        if self._loop_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._loop_task, 35)
        await self.pacer.stop()
        await self.lanes.stop(grace if grace is not None else min(self.settings.delivery_timeout, 10.0) + 1)
        await self.retention.join()
        await self.writer.stop()
        for _ in range(3):
            try:
                await self.writer.flush()
                await self.queue.release_owned(self.owner)
                break
            except Exception as exc:  # the database may be going down too; leases expire anyway
                log.warning("dispatcher_final_flush_failed", error=repr(exc))
                await asyncio.sleep(0.5)
        await self.wakeups.close()
        await self.attempts.close()
        log.info("dispatcher_stopped", owner=self.owner, sent=self.attempts.sent)

    def wake(self) -> None:
        self.wakeups.wake()

    def health_problem(self) -> str | None:
        """``None`` when healthy, else a short reason (``/healthz`` answers 503 with it)."""
        return self.health.problem(self._loop_task)

    # ------------------------------------------------------------------ claim loop
    async def _claim_loop(self) -> None:
        capacity, batch_size, claim_at = _budget(self.settings)
        while not self.stopping:
            self.health.tick()
            in_flight = len(self.lanes.in_flight)
            room = 0 if self.writer.holds_back_claims() else capacity - in_flight
            full = False
            if room > 0 and (room >= claim_at or not in_flight):
                limit = min(batch_size, room)
                try:
                    batch = await self._claim(limit, batch_size)
                    ready = await self.pacer.admit(batch) if batch else batch
                    self.health.database_ok()
                except Exception as exc:  # a paced batch left unadmitted: its leases run out, it is re-claimed
                    await self.wakeups.wait(self.health.database_error("claim", exc))
                    continue
                if ready:
                    self._start(ready)
                full = len(batch) == limit
            await self.wakeups.keep_listening()
            self.retention.maybe_start()
            if full and not self.stopping:
                await asyncio.sleep(0)
                continue
            await self.wakeups.wait(self.settings.poll_interval)

    async def _claim(self, limit: int, batch_size: int) -> list[Claimed]:
        await self.attempts.load_message_id_key()  # here, so that a database down at start is retried like a claim
        saturated = self.lanes.saturated()
        lease = self.settings.lease_seconds
        batch = await self.queue.claim(self.owner, limit, lease, saturated, head=HEAD_WINDOW * batch_size)
        if saturated and len(batch) < limit and time.monotonic() >= self._next_full_scan:
            self._next_full_scan = time.monotonic() + FULL_SCAN_EVERY
            batch += await self.queue.claim(self.owner, limit - len(batch), lease, saturated)
        return batch

    def _start(self, batch: list[Claimed]) -> None:
        """Claimed -> ready to send: each event's payload parsed once, rendered once per payload format;
        a job whose webhook was deleted or disabled meanwhile is finished here, unsent."""
        prepared: dict[tuple[int, str], PreparedEvent] = {}
        parsed: dict[int, dict[str, Any]] = {}
        ready: list[Job] = []
        for job in batch:
            if job.webhook_deleted or job.webhook_disabled_reason is not None:
                self.writer.add(unsent_outcome(job))
                continue
            key = (job.event_pk, job.payload_format)
            if key not in prepared:
                if job.event_pk not in parsed:
                    parsed[job.event_pk] = orjson.loads(job.payload)
                prepared[key] = PreparedEvent.prepare(job.payload_format, parsed[job.event_pk], job.domain_secret)
            ready.append((job, prepared[key]))
        self.lanes.start(ready)

