"""A delivery's life in typed values: its status, the claimed job the dispatcher sends, and the outcome
it writes back. Plain records shared by the queue (storage) and the dispatcher (worker), no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any

from mailhooks.core.subscriptions import DEFAULT_SETTINGS, SubscriptionSettings


class DeliveryStatus(enum.StrEnum):
    """Stored as its value. ``pending`` and ``delivering`` are the queue; the other three are final
    (until a manual retry or a recovery queues the delivery again)."""

    PENDING = "pending"
    DELIVERING = "delivering"  # claimed under a lease
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"  # 406 or 410: the receiver said never again

    @property
    def finished(self) -> bool:
        return self in FINISHED


IN_QUEUE = (DeliveryStatus.PENDING, DeliveryStatus.DELIVERING)
FINISHED = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED, DeliveryStatus.REJECTED)


@dataclass(frozen=True, slots=True)
class Claimed:
    """One claimed delivery with everything needed to send it."""

    id: int
    event_pk: int
    webhook_id: int
    attempts: int
    lease_expires_at: float
    event_id: str
    event_type: str
    payload: str
    url: str
    payload_format: str
    webhook_deleted: bool
    webhook_disabled_reason: str | None  # not None: the webhook is disabled
    signing_key: str
    domain_secret: str
    settings: SubscriptionSettings = DEFAULT_SETTINGS  # the subscription's own settings
    # The account's key before its last rotation, which also signs while the send is before its end.
    previous_signing_key: str | None = None
    previous_key_until: float = 0.0
    traceparent: str | None = None  # the ingest request's W3C trace context, when traces were on


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to write back for one claimed delivery (with its attempt, if one was made)."""

    delivery_id: int
    webhook_id: int
    status: DeliveryStatus
    next_attempt_at: float | None
    attempts: int
    attempt: dict[str, Any] | None  # attempts-table row, or None when nothing was sent
    last_status_code: int | None
    last_error: str | None
    endpoint_failure: bool = False  # counts towards auto-disable
    endpoint_success: bool = False  # clears the failing streak
    disable_reason: str | None = None

    def without_outside_text(self) -> Outcome:
        """The same outcome with every text that came from outside (response excerpt, request headers,
        error texts) replaced by a note: what is written for a row the database refused."""
        attempt = self.attempt
        if attempt is not None:
            attempt = {**attempt, "response_excerpt": None, "request_headers": None, "error": UNSTORABLE_NOTE}
        return replace(self, attempt=attempt, last_error=UNSTORABLE_NOTE if self.last_error is not None else None)


UNSTORABLE_NOTE = "the database refused this result's text (response excerpt and error dropped)"
