"""The result writer: outcomes (and jobs handed back unsent) are collected and written in one transaction
per batch (attempt rows, delivery states, webhook health), so no delivery costs a transaction of its own.

- **Isolation.** Text from outside is made storable before it becomes an outcome (``core.outcomes``);
  a batch the database still refuses for its data is written in halves until the refused row is
  alone, and that row without its outside text, so one receiver's bytes cannot hold up anyone else's
  results. Only errors saying the database cannot serve right now (``db.engine.is_unavailable``) make
  the writer back off and retry the batch whole.
- **Back-pressure.** Unsaved outcomes have a budget of their own, as large as the in-flight one
  (``MAILHOOKS_WORKER_CONCURRENCY``): once it is used up, the claim loop claims nothing more until the
  database takes them, so at most twice the concurrency is held in memory. Should the database never
  take them, their leases run out and the rows are claimed again: at least once. (Counting them
  against the in-flight budget instead would hold claims back behind every write under way, even on a
  healthy database.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable

import structlog

from mailhooks import metrics
from mailhooks.config import Settings
from mailhooks.core.deliveries import Outcome
from mailhooks.db.engine import is_unavailable
from mailhooks.db.queue import DeliveryQueue
from mailhooks.worker.health import LoopHealth

log = structlog.get_logger(__name__)

FLUSH_DELAY = 0.005  # gather results this long before writing a batch
FLUSH_MAX = 1000  # at most this many outcomes per write transaction


class ResultWriter:
    def __init__(self, queue: DeliveryQueue, owner: str, settings: Settings, health: LoopHealth,
                 wake_claims: Callable[[], None]) -> None:
        self.queue = queue
        self.owner = owner
        self.settings = settings
        self.health = health
        self._wake_claims = wake_claims
        self.outcomes: list[Outcome] = []
        self.releases: list[int] = []  # claimed deliveries handed back unsent
        self.saving = 0  # outcomes taken from ``outcomes`` by a write under way
        self.claims_held_back = False  # the claim loop waits for this writer (unsaved outcomes)
        self.flush_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.flush_event.set()

    def release(self, delivery_id: int) -> None:
        self.releases.append(delivery_id)
        self.flush_event.set()

    def holds_back_claims(self) -> bool:
        """Whether the claim loop must wait: as many outcomes unsaved as may be in flight. The writer
        wakes the claim loop after each write while this holds."""
        unsaved = len(self.outcomes) + self.saving
        self.claims_held_back = unsaved >= max(1, self.settings.worker_concurrency)
        return self.claims_held_back

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mailhooks-writer")

    async def stop(self) -> None:
        """Stop the background writes (``flush`` writes what is left)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        while True:
            await self.flush_event.wait()
            self.flush_event.clear()
            if len(self.outcomes) < max(1, self.settings.worker_batch_size):
                await asyncio.sleep(FLUSH_DELAY)
            try:
                await self.flush()
                self.health.database_ok()
            except Exception as exc:
                await asyncio.sleep(self.health.database_error("record", exc))
                self.flush_event.set()
            finally:
                metrics.UNSAVED_RESULTS.set(len(self.outcomes) + self.saving)  # per write, not per send
                if self.claims_held_back:
                    self._wake_claims()

    async def flush(self) -> None:
        """Write every unsaved outcome and release. Raises only when the database cannot be reached (or on
        cancellation), with whatever was not written put back for the next try."""
        while self.outcomes or self.releases:
            outcomes, self.outcomes = self.outcomes[:FLUSH_MAX], self.outcomes[FLUSH_MAX:]
            releases, self.releases = self.releases, []
            self.saving = len(outcomes)
            try:
                await self._record(outcomes, releases)
            finally:
                self.saving = 0

    def _put_back(self, outcomes: list[Outcome], releases: list[int]) -> None:
        self.outcomes[:0] = outcomes
        self.releases[:0] = releases

    async def _record(self, outcomes: list[Outcome], releases: list[int]) -> None:
        """One batch in one write; if the database refuses the batch for its data, the rows it can take
        are written and the refused row without its outside text (``_record_isolated``)."""
        try:
            await self.queue.record(self.owner, outcomes, releases, self.settings.disable_after_seconds)
            return
        except Exception as exc:
            if is_unavailable(exc):
                self._put_back(outcomes, releases)
                raise
            log.warning("record_refused_splitting", rows=len(outcomes), error=repr(exc)[:300])
        except BaseException:
            self._put_back(outcomes, releases)
            raise
        await self._record_isolated(outcomes, releases)

    async def _record_isolated(self, outcomes: list[Outcome], releases: list[int]) -> None:
        """Write the batch in halves until each refused row is alone (a bisection: about 2·log2(n) writes
        for one bad row among n); connection-level errors put back what is not written yet and raise."""
        disable_after = self.settings.disable_after_seconds
        chunks = collections.deque([outcomes])
        try:
            if releases:  # ids only: nothing in them for the database to refuse
                try:
                    await self.queue.record(self.owner, (), releases)
                except Exception as exc:
                    if is_unavailable(exc):
                        raise
                    log.error("release_failed", rows=len(releases), error=repr(exc)[:300])  # leases run out
                releases = []
            while chunks:
                chunk = chunks[0]
                try:
                    await self.queue.record(self.owner, chunk, (), disable_after)
                except Exception as exc:
                    if is_unavailable(exc):
                        raise
                    if len(chunk) > 1:
                        chunks.popleft()
                        half = len(chunk) // 2
                        chunks.extendleft((chunk[half:], chunk[:half]))
                        continue
                    await self._record_refused(chunk[0], exc)
                chunks.popleft()
        except BaseException:
            self._put_back([o for chunk in chunks for o in chunk], releases)
            raise

    async def _record_refused(self, outcome: Outcome, refusal: Exception) -> None:
        """The one row the database refused: its outcome without the outside text. Should even that be
        refused (a bug, or its delivery row is gone), it is dropped: its lease runs out and it is sent
        again, so it is late but not lost, and it holds up nobody."""
        try:
            await self.queue.record(self.owner, [outcome.without_outside_text()], (),
                                     self.settings.disable_after_seconds)
        except Exception as exc:
            if is_unavailable(exc):
                raise
            metrics.REFUSED_RESULTS.labels("dropped").inc()
            log.error("delivery_result_dropped", delivery=outcome.delivery_id, refusal=repr(refusal)[:300],
                      error=repr(exc)[:300])
            return
        metrics.REFUSED_RESULTS.labels("salvaged").inc()
        log.warning("delivery_result_not_storable", delivery=outcome.delivery_id, error=repr(refusal)[:300])
