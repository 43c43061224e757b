"""What one attempt means, as pure functions (no I/O): the delivery's next state, the endpoint's health,
the text stored for it, and the auto-disable window. The dispatcher calls them; the queue writes what
they say.

- ``attempt_outcome``: a send result and the attempt's number become an ``Outcome``. Status and next
  attempt come from the retry policy (``core.retry.decide``: 2xx succeeded, 406 rejected, 410
  rejected and the webhook disabled, a refused target or an unsendable URL failed at once, anything
  else retried on the schedule, then failed).
- The failing streak: an attempt the endpoint answered deliberately (``succeeded`` or ``rejected``)
  ends its webhook's failing streak; any other attempt starts or extends it (``endpoint_success`` /
  ``endpoint_failure``).
- ``auto_disable``: a webhook whose streak has lasted ``MAILHOOKS_DISABLE_AFTER_SECONDS`` when another
  attempt fails is disabled, with a reason that says so. The queue applies it in SQL with the cutoff
  and reason computed here.
- ``unsent_outcome``: a claimed delivery whose webhook was deleted or disabled since it was queued is
  ``failed`` with the reason, without an attempt (``webhook_disabled_error`` words it, at ingest too).
- Text from outside (the response excerpt, error texts quoting a receiver's bytes) is made storable
  here, where a send result becomes what is stored (``core.storable``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson

from mailhooks.core.deliveries import Claimed, DeliveryStatus, Outcome
from mailhooks.core.retry import FailureKind, decide
from mailhooks.core.storable import storable_text

EXCERPT_CHARS = 1024  # the sender reads at most 1 KB of the response: this cut is a guard only
ERROR_CHARS = 1024  # error texts quote receivers' bytes and URLs
# The endpoint answered, and meant it: these end a failing streak; every other status extends it.
ANSWERED = frozenset((DeliveryStatus.SUCCEEDED, DeliveryStatus.REJECTED))


class AttemptResult(Protocol):
    """What the sender reports about one POST (``SendResult`` is one)."""

    @property
    def status_code(self) -> int | None: ...
    @property
    def ok(self) -> bool: ...
    @property
    def duration_ms(self) -> float: ...
    @property
    def started_at(self) -> float: ...
    @property
    def excerpt(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def retry_after(self) -> str | None: ...
    @property
    def failure(self) -> FailureKind | None: ...


def attempt_outcome(job: Claimed, result: AttemptResult, headers: dict[str, str] | None, *, now: float,
                    schedule: Sequence[float]) -> Outcome:
    """The outcome of attempt ``job.attempts + 1`` of ``job``, which ended in ``result`` at ``now``.

    ``headers`` are the request headers that were sent (signatures, never the keys that made them),
    stored with the attempt for the dashboard. The delivery's ``last_error`` is the attempt's error
    text, or ``HTTP <code>`` for an answer that was not a 2xx.
    """
    number = job.attempts + 1
    excerpt = storable_text(result.excerpt, EXCERPT_CHARS) or None
    sent_error = storable_text(result.error, ERROR_CHARS)
    decision = decide(attempt_number=number, status_code=result.status_code, now=now,
                      schedule=schedule, retry_after=result.retry_after, failure=result.failure)
    attempt = {
        "delivery_id": job.id, "number": number, "started_at": result.started_at,
        "duration_ms": round(result.duration_ms, 3), "status_code": result.status_code,
        "response_excerpt": excerpt, "error": sent_error,
        "request_headers": orjson.dumps(headers).decode() if headers else None,
    }
    answered = decision.status in ANSWERED
    return Outcome(
        delivery_id=job.id, webhook_id=job.webhook_id, status=decision.status,
        next_attempt_at=decision.next_attempt_at, attempts=number, attempt=attempt,
        last_status_code=result.status_code,
        last_error=sent_error if sent_error else (None if result.ok else f"HTTP {result.status_code}"),
        endpoint_failure=not answered, endpoint_success=answered, disable_reason=decision.disable_reason,
    )


def webhook_disabled_error(reason: str | None) -> str:
    """The error of a delivery not sent because its webhook is disabled (at ingest or when claimed)."""
    return f"webhook disabled: {reason or 'disabled'}"


WEBHOOK_DELETED_ERROR = "webhook deleted"


def unsent_outcome(job: Claimed) -> Outcome:
    """The outcome of a claimed delivery whose webhook was deleted or disabled since it was queued:
    ``failed`` with the reason, without an attempt; the attempt count and the failing streak stay."""
    error = WEBHOOK_DELETED_ERROR if job.webhook_deleted else webhook_disabled_error(job.webhook_disabled_reason)
    return Outcome(job.id, job.webhook_id, DeliveryStatus.FAILED, None, job.attempts, None, None, error)


@dataclass(frozen=True, slots=True)
class AutoDisable:
    """The auto-disable rule at one moment: a webhook whose attempts have all failed since ``cutoff`` or
    earlier (its ``failing_since``), and whose latest attempt failed too, is disabled with ``reason``."""

    cutoff: float
    reason: str


def auto_disable(now: float, disable_after: float) -> AutoDisable:
    """The auto-disable window (``MAILHOOKS_DISABLE_AFTER_SECONDS``) as of ``now``."""
    return AutoDisable(cutoff=now - disable_after,
                       reason=f"every attempt failed for {disable_after / 86400:g} days")


def endpoint_health(outcomes: Iterable[Outcome]) -> tuple[list[int], list[int]]:
    """A batch's effect on its webhooks' failing streaks: ``(answered, failing)`` webhook ids, sorted.
    A webhook with both an answered and a failed attempt in the batch counts as answered: the receiver
    is up, so its streak ends."""
    answered = {o.webhook_id for o in outcomes if o.endpoint_success}
    failing = {o.webhook_id for o in outcomes if o.endpoint_failure} - answered
    return sorted(answered), sorted(failing)
