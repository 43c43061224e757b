"""Prometheus metrics for deliveries, shared by the worker and the API without either importing the other.
Counters live in the process that sends (``serve`` or a worker); the queue gauges are read from the
database at scrape time, so any API process reports them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
