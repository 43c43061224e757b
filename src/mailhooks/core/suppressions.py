"""Suppressions: the recipients a domain should not mail again (bounces, unsubscribes, complaints).

Two ways in, one rule each:
- by hand, through Mailgun's suppressions API (``parse_entries`` validates what a client sends);
- from events, native or from an intake source: a permanent failure adds a bounce, an unsubscribe an
  unsubscribe (from every tag), a complaint a complaint (``suppression_kind``, ``from_event``), in the same
  transaction that stores the event.

Addresses are compared case-insensitively (stored lower-case), as mail platforms do. A later event for a
suppressed recipient carries ``"suppressed": true`` in its event data, so subscriptions can filter it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from mailhooks.core.errors import ValidationFailed


class SuppressionKind(enum.StrEnum):
    BOUNCE = "bounce"
    UNSUBSCRIBE = "unsubscribe"
    COMPLAINT = "complaint"


# Permanent failures that say nothing about the address: the platform gave up retrying (``old``, Mailgun's
# word), or refused because the address is already suppressed.
NOT_THE_ADDRESS = frozenset({"old", "suppress-bounce", "suppress-complaint", "suppress-unsubscribe"})

MAX_ADDRESS = 254
MAX_ERROR = 1024
MAX_TAG = 128
MAX_TAGS = 10
MAX_BATCH = 1000  # entries per POST (Mailgun's own limit for a JSON list)
ALL_TAGS = "*"  # an unsubscribe from everything
DEFAULT_BOUNCE_CODE = "550"

_ADDRESS = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9.-]{1,253}")


@dataclass(frozen=True, slots=True)
class Suppression:
    kind: SuppressionKind
    address: str  # lower-case
    created_at: float
    code: str | None = None  # bounces: the SMTP code, as text (Mailgun answers it as a string)
    error: str | None = None  # bounces: the receiving server's message
    tags: tuple[str, ...] = ()  # unsubscribes: which tags ("*" = all)


@dataclass(frozen=True, slots=True)
class SuppressionPage:
    items: list[Suppression]
    has_more: bool


def normalise_address(raw: object) -> str:
    """The address as stored and looked up, or ``ValidationFailed`` on ``address``."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed.field("address", "An address is required.")
    address = raw.strip().lower()
    if len(address) > MAX_ADDRESS or not _ADDRESS.fullmatch(address):
        raise ValidationFailed.field("address", "The address is not a valid email address.")
    return address


def _text(value: object, name: str, limit: int) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValidationFailed.field(name, f"'{name}' must be text.")
    text = str(value)
    if len(text) > limit or "\x00" in text:
        raise ValidationFailed.field(name, f"'{name}' must be at most {limit} characters, without NUL.")
    return text


def _created_at(value: object, now: float) -> float:
    """Mailgun's ``created_at``: an RFC 2822 date (its own format); absent means now."""
    if value is None or value == "":
        return now
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 32503680000:
        return float(value)
    if isinstance(value, str):
        try:
            return parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError):
            pass
    raise ValidationFailed.field("created_at", "'created_at' must be a date like 'Fri, 21 Oct 2011 11:02:55 UTC'.")


def _tags(value: object) -> tuple[str, ...]:
    if value is None or value == "" or value == []:
        return (ALL_TAGS,)
    items = value if isinstance(value, list) else [value]
    tags = tuple(dict.fromkeys(t for t in (_text(v, "tag", MAX_TAG) for v in items) if t))
    if len(tags) > MAX_TAGS:
        raise ValidationFailed.field("tag", f"At most {MAX_TAGS} tags.")
    return tags or (ALL_TAGS,)


def parse_entry(kind: SuppressionKind, item: Mapping[str, Any], now: float) -> Suppression:
    """One entry a client sends (a form or one element of a JSON list)."""
    address = normalise_address(item.get("address"))
    created = _created_at(item.get("created_at"), now)
    if kind is SuppressionKind.BOUNCE:
        code = _text(item.get("code"), "code", 16) or DEFAULT_BOUNCE_CODE
        if not code.isdigit():
            raise ValidationFailed.field("code", "'code' must be a number.")
        return Suppression(kind, address, created, code=code, error=_text(item.get("error"), "error", MAX_ERROR) or "")
    if kind is SuppressionKind.UNSUBSCRIBE:
        return Suppression(kind, address, created, tags=_tags(item.get("tags", item.get("tag"))))
    return Suppression(kind, address, created)


def parse_entries(kind: SuppressionKind, items: Sequence[object], now: float) -> list[Suppression]:
    if not items:
        raise ValidationFailed.field("address", "An address is required.")
    if len(items) > MAX_BATCH:
        raise ValidationFailed.field("address", f"At most {MAX_BATCH} addresses per request.")
    out: list[Suppression] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ValidationFailed.field("address", "Each entry must be an object with an 'address'.")
        out.append(parse_entry(kind, item, now))
    return out


def suppression_kind(event_type: str, fields: Mapping[str, Any]) -> SuppressionKind | None:
    """Whether an event should suppress its recipient, and why: the one rule for native ingest and every
    intake source. A permanent failure is a bounce unless its reason says nothing about the address (it
    expired in the queue, or was refused as already suppressed). ``failed`` (Kirim's word, and the intake
    sources' "the platform refused to send") is a bounce only when marked permanent; ``bounced`` unless
    marked temporary."""
    if fields.get("reason") in NOT_THE_ADDRESS:
        return None
    severity = fields.get("severity")
    if (event_type == "permanent_fail" or (event_type == "failed" and severity == "permanent")
            or (event_type == "bounced" and severity != "temporary")):
        return SuppressionKind.BOUNCE
    if event_type == "complained":
        return SuppressionKind.COMPLAINT
    if event_type == "unsubscribed":
        return SuppressionKind.UNSUBSCRIBE
    return None


def from_event(event_type: str, fields: Mapping[str, Any], occurred_at: float) -> Suppression | None:
    """The suppression an incoming event implies, if any (a recipient that is not an address implies none)."""
    kind = suppression_kind(event_type, fields)
    recipient = fields.get("recipient")
    if kind is None or not isinstance(recipient, str):
        return None
    try:
        address = normalise_address(recipient)
    except ValidationFailed:
        return None
    if kind is SuppressionKind.BOUNCE:
        status = fields.get("delivery-status")
        status = status if isinstance(status, Mapping) else {}
        code = status.get("code")
        message = status.get("message") or status.get("description") or fields.get("reason") or ""
        known = isinstance(code, int) and not isinstance(code, bool)
        return Suppression(kind, address, occurred_at, code=str(code) if known else DEFAULT_BOUNCE_CODE,
                           error=str(message)[:MAX_ERROR])
    if kind is SuppressionKind.UNSUBSCRIBE:
        # From everything: an event cannot tell a tag's unsubscribe link from a global one (a SendGrid global
        # unsubscribe carries the message's categories as tags), and a missed unsubscribe is the worse error.
        return Suppression(kind, address, occurred_at, tags=(ALL_TAGS,))
    return Suppression(kind, address, occurred_at)


def recipient_of(fields: Mapping[str, Any]) -> str | None:
    """The recipient address an event is about, as stored (``normalise_address``), for the suppression
    lookup; ``None`` when it is not an address (a NUL, which PostgreSQL refuses in text, never reaches a query)."""
    try:
        return normalise_address(fields.get("recipient"))
    except ValidationFailed:
        return None


class SuppressionStore(Protocol):
    """What the suppressions API needs from storage (implemented by ``db.suppressions``)."""

    async def list(self, domain_id: int, kind: SuppressionKind, limit: int, after: str | None = None,
                   before: str | None = None, from_end: bool = False) -> SuppressionPage: ...

    async def get(self, domain_id: int, kind: SuppressionKind, address: str) -> Suppression | None: ...

    async def add(self, account_id: int, domain_id: int, entries: Sequence[Suppression]) -> int: ...

    async def delete(self, domain_id: int, kind: SuppressionKind, address: str | None) -> int: ...
