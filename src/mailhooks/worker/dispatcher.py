"""The dispatcher: claims due deliveries in batches, sends them concurrently, writes results in batches.

Shape of one process:

- the **claim loop** leases up to ``MAILHOOKS_WORKER_BATCH`` due rows at a time while fewer than
  ``MAILHOOKS_WORKER_CONCURRENCY`` are in flight. It wakes on an in-process event (ingest inside
  ``serve``), on PostgreSQL ``NOTIFY`` (ingest from any API process), when a slot frees up, and
  otherwise every ``MAILHOOKS_POLL_INTERVAL`` seconds (retry-due rows, expired leases);
- one **task per delivery** waits for its URL's semaphore (``MAILHOOKS_PER_URL_CONCURRENCY``), signs
  and POSTs. URLs already at their cap are excluded from the next claims, so a slow or hanging
  receiver holds at most its own share of the in-flight budget and cannot starve the others;
- the **writer** collects outcomes and writes them in one transaction per batch (attempt rows,
  delivery states, webhook health), so no delivery costs a transaction of its own. Text from outside
  (response excerpt, error texts) is made storable before it becomes an outcome; a batch the database
  still refuses for its data is written in halves until the refused row is alone, and that row without
  its outside text, so one receiver's bytes cannot hold up anyone else's results. Only connection-level
  errors make the writer back off and retry the batch whole. Unsaved outcomes are bounded too: once
  there are as many as ``MAILHOOKS_WORKER_CONCURRENCY``, nothing more is claimed until the database
  takes them (should it never, their leases run out and the rows are claimed again: at least once).

A row whose lease would run out before its send could finish is handed back instead of being sent,
so a healthy worker never sends a row another worker may already have re-claimed. SIGTERM stops the
claims, lets in-flight sends finish for a short grace period, releases the rest, and flushes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import secrets
import socket
import time
from collections import Counter
from typing import Any

import orjson
import structlog

from mailhooks import metrics
from mailhooks.config import Settings
from mailhooks.core.deliveries import Claimed, DeliveryStatus, Outcome
from mailhooks.core.message_ids import message_id
from mailhooks.core.payloads import PreparedEvent
from mailhooks.core.retry import FailureKind, decide
from mailhooks.core.storable import storable_text
from mailhooks.core.targets import TargetPolicy
from mailhooks.db.database import DELIVERIES_CHANNEL
from mailhooks.db.engine import is_unavailable
from mailhooks.db.queue import delivery_queue
from mailhooks.db.store import Store
from mailhooks.sending import Sender, SendResult

log = structlog.get_logger(__name__)

FLUSH_DELAY = 0.005  # gather results this long before writing a batch
FLUSH_MAX = 1000  # at most this many outcomes per write transaction
RETENTION_EVERY = 60.0
RETENTION_BATCHES = 20
DB_BACKOFF_MAX = 5.0
LISTEN_RETRY = 5.0  # seconds between attempts to re-establish LISTEN
# While some URLs are at their cap, claims skip their rows but look only at the first HEAD_WINDOW x batch
# due rows (a bounded scan however large the backlog); at most every FULL_SCAN_EVERY seconds a claim looks
# through the whole queue, so that other endpoints' rows behind a slow one's backlog still go out.
HEAD_WINDOW = 8
FULL_SCAN_EVERY = 1.0
EXCERPT_CHARS = 1024  # the excerpt is at most 1 KB read from the response: this cut is a guard only
ERROR_CHARS = 1024  # error texts quote receivers' bytes and URLs

_OUTCOME_COUNTERS: dict[str, Any] = {}
_FAILURE_COUNTERS: dict[FailureKind, Any] = {}


class Dispatcher:
    def __init__(self, store: Store, settings: Settings, policy: TargetPolicy) -> None:
        self.store = store
        self.settings = settings
        self.policy = policy
        self.queue = delivery_queue(store)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.capacity = max(1, settings.worker_concurrency)
        self.batch_size = max(1, settings.worker_batch_size)
        self.per_url = max(1, settings.per_url_concurrency)
        self.lease_seconds = settings.lease_seconds
        self.timeout = settings.delivery_timeout
        self.sender: Sender | None = None
        self.message_id_key = b""  # read before the first claim (``_claim``)
        self.wake_event = asyncio.Event()
        self.flush_event = asyncio.Event()
        self.in_flight: dict[int, Claimed] = {}  # claimed and not finished: queued for a lane or being sent
        # Per URL: claimed jobs waiting to be sent, and up to ``per_url`` lane tasks sending them one after
        # another (a task per lane, not per delivery: task creation and semaphore hand-offs showed up at
        # about a tenth of the drain profile).
        self.url_queues: dict[str, collections.deque[tuple[Claimed, PreparedEvent]]] = {}
        self.url_lanes: dict[str, int] = {}
        self.lanes: set[asyncio.Task[None]] = set()
        self.url_load: Counter[str] = Counter()
        self.url_hooks: dict[str, set[int]] = {}
        self.outcomes: list[Outcome] = []
        self.saving = 0  # outcomes taken from ``outcomes`` by a write under way
        self.claims_held_back = False  # the claim loop waits for the writer (unsaved outcomes)
        self.releases: list[int] = []
        self.stopping = False
        self.last_tick = time.monotonic()
        self.last_error: str | None = None
        self.consecutive_errors = 0
        self.sent = 0  # attempts made by this process (logged at stop: shows how work was shared)
        self._loop_task: asyncio.Task[None] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._listener: Any = None
        self._next_listen = 0.0
        self._next_full_scan = 0.0
        self._next_retention = time.time() + 5.0  # first pass shortly after start
        self._purge_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.sender = Sender(self.policy, timeout=self.timeout, limit=self.capacity)
        if self.store.postgres:
            await self._listen()
        self._writer_task = asyncio.create_task(self._writer(), name="mailhooks-writer")
        self._loop_task = asyncio.create_task(self._claim_loop(), name="mailhooks-dispatcher")
        log.info("dispatcher_started", owner=self.owner, capacity=self.capacity, batch=self.batch_size)

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming, let in-flight sends finish for ``grace`` seconds, release the rest, flush."""
        self.stopping = True
        self.wake_event.set()
        if self._loop_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._loop_task, 35)
        tasks = list(self.lanes)
        if tasks:
            await asyncio.wait(tasks, timeout=grace if grace is not None else min(self.timeout, 10.0) + 1)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._purge_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._purge_task, 5)
        if self._writer_task is not None:
            self._writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer_task
        for _ in range(3):
            try:
                await self.flush()
                await self.queue.release_owned(self.owner)
                break
            except Exception as exc:  # the database may be going down too; leases expire anyway
                log.warning("dispatcher_final_flush_failed", error=repr(exc))
                await asyncio.sleep(0.5)
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
        if self.sender is not None:
            await self.sender.close()
        log.info("dispatcher_stopped", owner=self.owner, sent=self.sent)

    def wake(self) -> None:
        self.wake_event.set()

    def health_problem(self) -> str | None:
        """``None`` when healthy, else a short reason (``/healthz`` answers 503 with it)."""
        task = self._loop_task
        if task is None:
            return "dispatcher not started"
        if task.done():
            exc = None if task.cancelled() else task.exception()
            return f"dispatcher loop stopped: {exc!r}" if exc else "dispatcher loop stopped"
        stalled = time.monotonic() - self.last_tick
        if stalled > max(30.0, 20 * self.settings.poll_interval):
            return f"dispatcher loop has not ticked for {stalled:.0f}s"
        if self.consecutive_errors >= 5:
            return f"dispatcher database errors: {self.last_error}"
        return None

    # ------------------------------------------------------------------ wake-ups
    async def _listen(self) -> None:
        """LISTEN on the ingest channel with a dedicated asyncpg connection (polling covers any gap)."""
        self._next_listen = time.monotonic() + LISTEN_RETRY
        try:
            self._listener = await self.store.listen(DELIVERIES_CHANNEL, lambda *_args: self.wake_event.set())
        except Exception as exc:
            log.warning("dispatcher_listen_failed", error=repr(exc))
            self._listener = None

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake_event.wait(), seconds)
        self.wake_event.clear()

    # ------------------------------------------------------------------ claim loop
    async def _claim_loop(self) -> None:
        while not self.stopping:
            self.last_tick = time.monotonic()
            # Outcomes not yet written have a budget of their own, as large as the in-flight one: while
            # the database does not take them, nothing more is claimed, so at most twice the concurrency
            # is held in memory. (Counting them against the in-flight budget instead would hold claims
            # back behind every write under way, even on a healthy database.)
            unsaved = len(self.outcomes) + self.saving
            self.claims_held_back = unsaved >= self.capacity
            room = 0 if self.claims_held_back else self.capacity - len(self.in_flight)
            full = False
            if room > 0 and (room >= max(1, min(self.batch_size, self.capacity) // 4) or not self.in_flight):
                limit = min(self.batch_size, room)
                try:
                    batch = await self._claim(limit)
                    self.consecutive_errors = 0
                except Exception as exc:
                    self._db_error("claim", exc)
                    await self._wait(min(DB_BACKOFF_MAX, 0.2 * 2 ** self.consecutive_errors))
                    continue
                if batch:
                    self._start(batch)
                full = len(batch) == limit
            if self.store.postgres and (self._listener is None or self._listener.is_closed()) \
                    and time.monotonic() >= self._next_listen:
                await self._listen()  # polling covers the gap until LISTEN is back
            self._maybe_purge()
            if full and not self.stopping:
                await asyncio.sleep(0)
                continue
            await self._wait(self.settings.poll_interval)

    async def _claim(self, limit: int) -> list[Claimed]:
        if not self.message_id_key:  # here, so that a database down at start is retried like a claim
            self.message_id_key = await self.store.message_id_key()
        saturated = self._saturated()
        batch = await self.queue.claim(self.owner, limit, self.lease_seconds, saturated,
                                        head=HEAD_WINDOW * self.batch_size)
        if saturated and len(batch) < limit and time.monotonic() >= self._next_full_scan:
            self._next_full_scan = time.monotonic() + FULL_SCAN_EVERY
            batch += await self.queue.claim(self.owner, limit - len(batch), self.lease_seconds, saturated)
        return batch

    def _saturated(self) -> list[int]:
        hooks: set[int] = set()
        for url, load in self.url_load.items():
            if load >= self.per_url:
                hooks |= self.url_hooks.get(url, set())
        return sorted(hooks)

    def _db_error(self, what: str, exc: Exception) -> None:
        self.consecutive_errors += 1
        self.last_error = f"{what}: {type(exc).__name__}"
        log.warning("dispatcher_db_error", what=what, error=repr(exc), consecutive=self.consecutive_errors)

    def _start(self, batch: list[Claimed]) -> None:
        prepared: dict[tuple[int, str], PreparedEvent] = {}
        parsed: dict[int, dict[str, Any]] = {}
        for job in batch:
            if job.webhook_deleted or job.webhook_disabled_reason is not None:
                error = "webhook deleted" if job.webhook_deleted else f"webhook disabled: {job.webhook_disabled_reason}"
                self._finish(Outcome(job.id, job.webhook_id, DeliveryStatus.FAILED, None, job.attempts, None, None,
                                     error))
                continue
            key = (job.event_pk, job.payload_format)
            if key not in prepared:
                if job.event_pk not in parsed:
                    parsed[job.event_pk] = orjson.loads(job.payload)
                prepared[key] = PreparedEvent.prepare(job.payload_format, parsed[job.event_pk], job.domain_secret)
            self.url_load[job.url] += 1
            self.url_hooks.setdefault(job.url, set()).add(job.webhook_id)
            self.in_flight[job.id] = job
            queue = self.url_queues.get(job.url)
            if queue is None:
                queue = self.url_queues[job.url] = collections.deque()
            queue.append((job, prepared[key]))
            lanes = self.url_lanes.get(job.url, 0)
            if lanes < self.per_url:
                self.url_lanes[job.url] = lanes + 1
                lane = asyncio.create_task(self._lane(job.url, queue))
                self.lanes.add(lane)
                lane.add_done_callback(self.lanes.discard)
        metrics.IN_FLIGHT.set(len(self.in_flight))

    # ------------------------------------------------------------------ one delivery
    async def _lane(self, url: str, queue: collections.deque[tuple[Claimed, PreparedEvent]]) -> None:
        """Send this URL's queued jobs one at a time until none is left; a cancelled lane hands its
        current and queued jobs back (``stop`` releases whatever is still leased anyway)."""
        try:
            while queue:
                job, prepared = queue.popleft()
                await self._deliver(job, prepared)
        except asyncio.CancelledError:
            while queue:
                job, _ = queue.popleft()
                self.releases.append(job.id)
                self._done(job)
            raise
        finally:
            lanes = self.url_lanes[url] - 1
            if lanes:
                self.url_lanes[url] = lanes
            else:
                del self.url_lanes[url]
                if not queue and self.url_queues.get(url) is queue:
                    del self.url_queues[url]

    async def _deliver(self, job: Claimed, prepared: PreparedEvent) -> None:
        assert self.sender is not None
        try:
            # Send only if the lease outlives the send: otherwise another worker may re-claim it.
            if self.stopping or time.time() + min(self.timeout, self.lease_seconds / 2) > job.lease_expires_at:
                self.releases.append(job.id)
                return
            body, headers = prepared.render(job.signing_key, message_id(self.message_id_key, job.id))
            result = await self.sender.post(job.url, body, headers)
            self.sent += 1
            self._finish(self._outcome(job, result, headers))
        except asyncio.CancelledError:
            self.releases.append(job.id)
            raise
        except Exception as exc:  # a bug must not leave the row leased until expiry silently
            log.exception("delivery_crashed", delivery=job.id, error=repr(exc))
            self.releases.append(job.id)
        finally:
            self._done(job)

    def _done(self, job: Claimed) -> None:
        self.in_flight.pop(job.id, None)
        self.url_load[job.url] -= 1
        if self.url_load[job.url] <= 0:
            del self.url_load[job.url]
            self.url_hooks.pop(job.url, None)
        metrics.IN_FLIGHT.set(len(self.in_flight))
        self.flush_event.set()
        if len(self.in_flight) <= self.capacity - max(1, min(self.batch_size, self.capacity) // 4):
            self.wake_event.set()

    def _outcome(self, job: Claimed, result: SendResult, headers: dict[str, str] | None = None) -> Outcome:
        number = job.attempts + 1
        # The one place where a send result becomes stored text: what the receiver sent, made storable.
        excerpt = storable_text(result.excerpt, EXCERPT_CHARS) or None
        sent_error = storable_text(result.error, ERROR_CHARS)
        decision = decide(attempt_number=number, status_code=result.status_code, error=result.error,
                          now=time.time(), schedule=self.settings.retry_schedule, retry_after=result.retry_after,
                          failure=result.failure)
        metrics.ATTEMPT_SECONDS.observe(result.duration_ms / 1000)
        label = "retry" if decision.status == DeliveryStatus.PENDING else decision.status
        counter = _OUTCOME_COUNTERS.get(label)
        if counter is None:  # labels() takes a lock and builds a key on every call: keep the children
            counter = _OUTCOME_COUNTERS[label] = metrics.DELIVERIES.labels(label)
        counter.inc()
        if result.failure is not None:
            failures = _FAILURE_COUNTERS.get(result.failure)
            if failures is None:
                failures = _FAILURE_COUNTERS[result.failure] = metrics.ATTEMPT_FAILURES.labels(result.failure.value)
            failures.inc()
        attempt = {
            "delivery_id": job.id, "number": number, "started_at": result.started_at,
            "duration_ms": round(result.duration_ms, 3), "status_code": result.status_code,
            "response_excerpt": excerpt, "error": sent_error,
            # What was sent, for the dashboard: signatures, never the keys that made them.
            "request_headers": orjson.dumps(headers).decode() if headers else None,
        }
        error = sent_error if sent_error else (None if result.ok else f"HTTP {result.status_code}")
        return Outcome(
            delivery_id=job.id, webhook_id=job.webhook_id, status=decision.status,
            next_attempt_at=decision.next_attempt_at, attempts=number, attempt=attempt,
            last_status_code=result.status_code, last_error=error,
            endpoint_failure=decision.status not in (DeliveryStatus.SUCCEEDED, DeliveryStatus.REJECTED),
            endpoint_success=decision.status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.REJECTED),
            disable_reason=decision.disable_reason,
        )

    def _finish(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.flush_event.set()

    # ------------------------------------------------------------------ batched writes
    async def _writer(self) -> None:
        while True:
            await self.flush_event.wait()
            self.flush_event.clear()
            if len(self.outcomes) < self.batch_size:
                await asyncio.sleep(FLUSH_DELAY)
            try:
                await self.flush()
                self.consecutive_errors = 0
            except Exception as exc:
                self._db_error("record", exc)
                await asyncio.sleep(min(DB_BACKOFF_MAX, 0.2 * 2 ** self.consecutive_errors))
                self.flush_event.set()
            finally:
                metrics.UNSAVED_RESULTS.set(len(self.outcomes) + self.saving)  # per write, not per send
                if self.claims_held_back:
                    self.wake_event.set()

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
        disable_after = self.settings.disable_after_seconds
        try:
            await self.queue.record(self.owner, outcomes, releases, disable_after)
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

    # ------------------------------------------------------------------ retention
    def _maybe_purge(self) -> None:
        """Start a retention pass now and then, beside the claim loop (deletes must not stall claims)."""
        now = time.time()
        if now < self._next_retention or (self._purge_task is not None and not self._purge_task.done()):
            return
        self._next_retention = now + RETENTION_EVERY
        self._purge_task = asyncio.create_task(self._purge(now - self.settings.retention_days * 86400))

    async def _purge(self, cutoff: float) -> None:
        try:
            for _ in range(RETENTION_BATCHES):
                if self.stopping or not await self.queue.purge(cutoff):
                    break
                await asyncio.sleep(0.05)
        except Exception as exc:
            log.warning("retention_failed", error=repr(exc))
