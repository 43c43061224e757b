"""Operational events: what happened to an account's own subscriptions and deliveries, told to the account.

Four kinds (``OperationalKind``). They arise where the delivery queue records the state change (a
subscription's failing streak begins or ends, it is disabled, a delivery fails for good), as a row of the
``operational_events`` table written in that same transaction: no alert is lost, and a batch written
again writes no second one (the conditions are on the state, which has already changed). From there the
worker fans each out to the account's operational webhooks (ordinary deliveries of payload format
``operational``) and, throttled, to the account's alert address by email.

Operational subscriptions never cause operational events themselves: an operational endpoint that fails
would otherwise report its own failures to itself without end.

This module holds the pure parts: the kinds, the payload a receiver gets, the email a person gets, and
the throttle rule. No I/O.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailhooks.core.errors import ValidationFailed
from mailhooks.core.payloads import PayloadFormat

OPERATIONAL_FORMAT = PayloadFormat.OPERATIONAL.value  # the payload_format of an operational webhook row


class OperationalKind(enum.StrEnum):
    WEBHOOK_DISABLED = "webhook.disabled"  # a 410, or failing for MAILHOOKS_DISABLE_AFTER_SECONDS
    WEBHOOK_FAILING = "webhook.failing"  # a failing streak began (once per streak)
    WEBHOOK_RECOVERED = "webhook.recovered"  # the streak ended by an answer
    DELIVERY_EXHAUSTED = "delivery.exhausted"  # a delivery is failed after its attempts


class EmailStatus(enum.StrEnum):
    """Where an operational event stands towards the account's alert address."""

    PENDING = "pending"  # to be mailed (alone, or in the subscription's next digest)
    SENT = "sent"
    NONE = "none"  # no address, or no SMTP server configured, when it was fanned out


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change the queue has just written, to become an operational event."""

    kind: OperationalKind
    account_id: int
    webhook_id: int
    delivery_id: int | None = None
    detail: str | None = None  # the disable reason, or the delivery's last error


@dataclass(frozen=True, slots=True)
class OperationalEvent:
    """A stored operational event with what its payload and email tell."""

    id: int
    kind: OperationalKind
    occurred_at: float
    detail: str | None
    subscription: dict[str, Any]  # guid, url, event_type, domain (None: account level)
    delivery: dict[str, Any] | None  # id, event_id, domain, attempts, last_status_code, last_error


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def payload(event: OperationalEvent) -> dict[str, Any]:
    """The body an operational webhook receives, in the Standard Webhooks shape (``type``, ``timestamp``,
    ``data``); signed with the account's signing key like every delivery."""
    data: dict[str, Any] = {"id": f"op_{event.id}", "subscription": event.subscription}
    if event.kind == OperationalKind.WEBHOOK_DISABLED:
        data["reason"] = event.detail
    if event.delivery is not None:
        data["delivery"] = event.delivery
    return {"type": event.kind.value, "timestamp": iso(event.occurred_at), "data": data}


def _line(event: OperationalEvent) -> str:
    sub = event.subscription
    text = f"{iso(event.occurred_at)}  {event.kind.value}  {sub.get('event_type')} -> {sub.get('url')}"
    if event.kind == OperationalKind.WEBHOOK_DISABLED and event.detail:
        text += f"  (reason: {event.detail})"
    elif event.delivery is not None:
        text += f"  (delivery {event.delivery['id']}, event {event.delivery['event_id']}: " \
                f"{event.delivery.get('last_error') or 'failed'})"
    return text


def alert_email(events: Sequence[OperationalEvent], username: str) -> tuple[str, str]:
    """(subject, plain-text body) of one alert (one event) or one digest (several, of one subscription)."""
    first = events[0]
    url = first.subscription.get("url")
    if len(events) == 1:
        subject = f"[mailhooks] {first.kind.value}: {url}"
        intro = f"Account {username}: {first.kind.value} for one of your subscriptions."
    else:
        subject = f"[mailhooks] digest: {len(events)} alerts for {url}"
        intro = (f"Account {username}: {len(events)} alerts for one subscription since the last email "
                 "(at most one email per subscription per hour; the rest are collected here).")
    body = "\n".join([intro, "", *(_line(e) for e in events), "",
                      f"Subscription {first.subscription.get('guid')}. Re-enable a disabled subscription with "
                      "POST /v1/subscriptions/{guid}/enable or on the dashboard.", ""])
    return subject, body


def mail_due_at(last_sent_at: float | None, interval: float) -> float:
    """When a subscription may be mailed next: at once if it never was, else ``interval`` seconds after
    its last email (everything collected meanwhile goes out then, as one digest)."""
    return float("-inf") if last_sent_at is None else last_sent_at + interval


# A plain address: no spaces, no CR/LF (it becomes a header), one @, a dot in the domain.
_EMAIL = re.compile(r"[^\s@<>\"(),;:]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.[A-Za-z0-9-]{2,63}")


def check_alert_email(value: object) -> str | None:
    """The alert address as stored (``None`` clears it), or a 422 on ``email``."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL.fullmatch(value):
        raise ValidationFailed.field("email", "The email must be a valid email address.")
    return value


def check_kinds(value: object) -> list[OperationalKind]:
    """``event_types`` of an operational webhook: a non-empty list of known kinds, each once."""
    known = ", ".join(k.value for k in OperationalKind)
    if not isinstance(value, list) or not value:
        raise ValidationFailed.field("event_types", f"The event types must be a non-empty list of: {known}.")
    kinds: list[OperationalKind] = []
    for item in value:
        if not isinstance(item, str) or item not in OperationalKind._value2member_map_:
            raise ValidationFailed.field("event_types", f"Unknown event type; known: {known}.")
        if OperationalKind(item) in kinds:
            raise ValidationFailed.field("event_types", f"The event type {item} is given twice.")
        kinds.append(OperationalKind(item))
    return kinds
