"""Prometheus metrics for deliveries, shared by the worker and the API without either importing the other.
Counters live in the process that sends (``serve`` or a worker); the queue gauges are read from the
database at scrape time, so any API process reports them."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import structlog
from prometheus_client import Counter, Gauge, Histogram

log = structlog.get_logger(__name__)

DELIVERIES = Counter(
    "mailhooks_deliveries_total",
    "Attempt outcomes by what they meant for the delivery: succeeded, rejected, failed (given up), retry.",
    ["outcome"],
)
ATTEMPT_FAILURES = Counter(
    "mailhooks_attempt_failures_total",
    "Attempts that got no HTTP answer, by why: refused, invalid_url (final), unresolvable, timeout,"
    " connection, protocol (retried).",
    ["kind"],
)
ATTEMPT_SECONDS = Histogram(
    "mailhooks_attempt_duration_seconds",
    "Duration of one HTTP attempt to a subscriber.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DUE_BACKLOG = Gauge("mailhooks_due_deliveries", "Deliveries due now and not leased (includes expired leases).")
OLDEST_DUE_AGE = Gauge("mailhooks_oldest_due_age_seconds", "How long the oldest due delivery has been waiting.")
IN_FLIGHT = Gauge("mailhooks_in_flight_deliveries", "Deliveries claimed by this process and not yet finished.")
UNSAVED_RESULTS = Gauge(
    "mailhooks_unsaved_results",
    "Attempt results of this process not yet written (no claims while they reach MAILHOOKS_WORKER_CONCURRENCY).",
)
REFUSED_RESULTS = Counter(
    "mailhooks_refused_results_total",
    "Results the database refused for their data: written without the outside text (salvaged), or not at "
    "all (dropped: the delivery is sent again when its lease runs out).",
    ["outcome"],
)


class QueueStats(Protocol):
    async def queue_stats(self) -> tuple[int, float | None]:
        """How many deliveries are due, and since when (epoch seconds) the oldest one is."""
        ...


# /metrics is anonymous and scraped by anyone who can reach it: counting the due queue (a scan of every
# due row) on each scrape would let a tight scrape loop load the database. The count is shared: taken at
# most once per QUEUE_FIGURES_MAX_AGE, by one scrape at a time, the others serving the last figure.
QUEUE_FIGURES_MAX_AGE = 5.0
QUEUE_COUNT_DEADLINE = 10.0
QUEUE_FIGURES_AGE = Gauge("mailhooks_queue_figures_age_seconds",
                          "Age of the due-queue figures served (they are counted at most every few seconds).")
QUEUE_COUNTS = Counter("mailhooks_queue_counts", "Times this process counted the due queue for /metrics.")


class QueueFigures:
    """The due-queue gauges of ``/metrics``: counted in the database at most every few seconds."""

    def __init__(self, queue: QueueStats) -> None:
        self.queue = queue
        self.due = 0
        self.oldest: float | None = None  # epoch seconds of the oldest due delivery
        self.counted_at = 0.0  # monotonic; 0 until the first count
        self.tried_at = 0.0
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return time.monotonic() - self.tried_at < QUEUE_FIGURES_MAX_AGE

    async def refresh(self) -> None:
        if self._fresh() or (self._lock.locked() and self.counted_at):
            return  # recent enough, or another scrape is counting: serve what we have
        async with self._lock:
            if self._fresh():
                return
            try:
                async with asyncio.timeout(QUEUE_COUNT_DEADLINE):
                    self.due, self.oldest = await self.queue.queue_stats()
            except Exception as exc:  # still serve the process counters and the last figures
                log.warning("metrics_queue_stats_failed", error=repr(exc))
            else:
                self.counted_at = time.monotonic()
                QUEUE_COUNTS.inc()
            finally:
                self.tried_at = time.monotonic()  # a failing count is not retried by every scrape either

    def export(self) -> None:
        DUE_BACKLOG.set(self.due)
        OLDEST_DUE_AGE.set(max(0.0, time.time() - self.oldest) if self.oldest is not None else 0.0)
        QUEUE_FIGURES_AGE.set(time.monotonic() - self.counted_at if self.counted_at else 0.0)

SOURCE_REJECTIONS = Counter(
    "mailhooks_source_rejections_total",
    "Intake requests of a mail platform's feed refused, by provider and reason: signature, expired, replayed,"
    " malformed, unknown_event, invalid.",
    ["provider", "reason"],
)
SOURCE_EVENTS = Counter(
    "mailhooks_source_events_total",
    "Events received from a mail platform's feed, by provider and outcome: new, repeat (already known), ignored"
    " (documented by the provider, no mailhooks type).",
    ["provider", "outcome"],
)
