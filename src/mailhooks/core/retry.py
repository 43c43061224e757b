"""The retry policy: what one attempt's outcome means for its delivery. Pure functions, no I/O.

- 2xx: ``succeeded``.
- 406: ``rejected``, never retried (Mailgun's rule for "do not send this again").
- 410: ``rejected`` and the webhook is disabled (Standard Webhooks: the endpoint is gone).
- A target refused by the address policy, or a URL that can never be sent: ``failed`` at once.
  Retrying cannot change the operator's policy; the row stays visible with the reason and can be
  retried or recovered by hand.
- Anything else (other codes, timeouts, connection errors, and DNS lookups that failed or timed
  out: a resolver recovers, so those are transient too): retried after ``schedule[n-1]`` seconds
  (±20 % jitter) where ``n`` is the number of the attempt that just failed; after the last entry the
  delivery is ``failed``. A 429's ``Retry-After`` is honoured (never retry sooner than it asks) up to
  ``MAX_RETRY_AFTER``, so a receiver cannot park a delivery for days.

What an outcome means for the endpoint's health and the auto-disable window is ``core.outcomes``.

A manual retry or a recovery re-queues a finished delivery for one more attempt: its attempt count is
already past the schedule, so a failure finishes it again instead of starting another 8-hour cycle.
"""

from __future__ import annotations

import email.utils
import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass

from mailhooks.core.deliveries import DeliveryStatus


class FailureKind(enum.StrEnum):
    """Why an attempt got no HTTP answer (``None`` when it got one)."""

    REFUSED = "refused"  # the target is, or resolves to, an address the policy does not allow
    INVALID_URL = "invalid_url"  # the URL cannot be sent at all (stored before the syntax check was strict)
    UNRESOLVABLE = "unresolvable"  # the lookup failed: no such name right now, or the resolver failed
    TIMEOUT = "timeout"  # no answer in time: the lookup, the connection or the response
    CONNECTION = "connection"  # could not connect, or the connection broke
    PROTOCOL = "protocol"  # connected, but the answer was not HTTP we could read

    @property
    def permanent(self) -> bool:
        """Retrying cannot help: the delivery is ``failed`` after this attempt."""
        return self in (FailureKind.REFUSED, FailureKind.INVALID_URL)


JITTER = 0.2
MAX_RETRY_AFTER = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class Decision:
    status: DeliveryStatus
    next_attempt_at: float | None
    disable_reason: str | None = None  # set when this outcome disables the webhook (410)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def jittered(delay: float, rng: random.Random | None = None) -> float:
    factor = 1.0 + (rng or random).uniform(-JITTER, JITTER)
    return max(0.0, delay * factor)


def decide(
    *,
    attempt_number: int,
    status_code: int | None,
    now: float,
    schedule: Sequence[float],
    retry_after: str | None = None,
    failure: FailureKind | None = None,
    rng: random.Random | None = None,
) -> Decision:
    """The delivery's next state after attempt ``attempt_number`` (1-based) ended like this."""
    if status_code is not None and 200 <= status_code < 300:
        return Decision(DeliveryStatus.SUCCEEDED, None)
    if status_code == 406:
        return Decision(DeliveryStatus.REJECTED, None)
    if status_code == 410:
        return Decision(DeliveryStatus.REJECTED, None, disable_reason="410 Gone from the receiver")
    if failure is not None and failure.permanent:
        return Decision(DeliveryStatus.FAILED, None)
    if attempt_number > len(schedule):
        return Decision(DeliveryStatus.FAILED, None)
    delay = jittered(schedule[attempt_number - 1], rng)
    if status_code == 429:
        asked = parse_retry_after(retry_after, now)
        if asked is not None:
            delay = max(delay, min(asked, MAX_RETRY_AFTER))
    return Decision(DeliveryStatus.PENDING, now + delay)
