"""Events in, deliveries out: ingest validation, the canonical event, and the fan-out rules.

An accepted event and one delivery row per target are written in one transaction (the outbox), so
an acknowledged event can never be lost. Targets of an event of type T on domain D are the account's
webhooks of type T on D plus its account-level webhooks of type T, de-duplicated by (url, payload
format) with the domain-level row winning. Webhooks that are disabled still get a delivery row,
written straight away as ``failed`` with the reason: nothing is dropped silently, and a recovery
after re-enabling sends them.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from mailhooks.core.accounts import find_domain
from mailhooks.core.errors import DomainNotFound, ValidationFailed
from mailhooks.core.event_types import CANONICAL, MAILGUN_ALIASES, parse_type
from mailhooks.core.models import Account, Domain, Webhook
from mailhooks.core.nesting import TOO_DEEP, too_deep
from mailhooks.core.outcomes import webhook_disabled_error
from mailhooks.core.payloads import canonical_event, dumps, new_event_id
from mailhooks.core.ports import DomainLookup
from mailhooks.core.subscriptions import NO_FILTERS, event_matches
from mailhooks.core.suppressions import Suppression, from_event, recipient_of

MAX_BATCH = 1000
MAX_ID_LENGTH = 128
MAX_STRING = 4096
MAX_TIMESTAMP = 1e11
# One stored event (its canonical JSON) at most: a page of ``GET /v1/events`` holds up to 1000 of them.
MAX_EVENT_BYTES = 64 * 1024
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # printable: ids travel in headers and logs
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

OBJECT_FIELDS = ("message", "user-variables", "delivery-status", "geolocation", "client-info", "envelope",
                 "flags", "storage")
STRING_FIELDS = ("severity", "reason", "url", "ip", "log-level", "method")


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """One validated ingest item (still unresolved: ``domain`` is a name)."""

    event_id: str | None
    domain: str
    event_type: str
    occurred_at: float | None
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A canonical event ready for storage."""

    event_id: str
    account_id: int
    domain_id: int
    event_type: str
    occurred_at: float
    received_at: float
    payload: str
    recipient: str | None = None  # lower-case, for the suppression lookup at intake
    suppression: Suppression | None = None  # the suppression this event adds (core.suppressions)
    traceparent: str | None = None  # W3C trace context of the request that brought it (traces on)


@dataclass(frozen=True, slots=True)
class Target:
    webhook_id: int
    disabled_reason: str | None = None  # not None: the row is written already ``failed``


def _check_item(item: object, prefix: str, errors: dict[str, list[str]]) -> IncomingEvent | None:
    def bad(field: str, message: str) -> None:
        errors.setdefault(prefix + field, []).append(message)

    if not isinstance(item, dict):
        errors.setdefault(prefix.rstrip(".") or "body", []).append("Each event must be a JSON object.")
        return None
    before = sum(len(v) for v in errors.values())
    event_id = item.get("id")
    if event_id is not None and (not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_LENGTH
                                 or _CONTROL.search(event_id) is not None):
        bad("id", f"The id must be a non-empty string of at most {MAX_ID_LENGTH} printable characters.")
    domain = item.get("domain")
    if not isinstance(domain, str) or not domain.strip():
        bad("domain", "The domain field is required.")
    elif len(domain) > 253:
        bad("domain", "The domain may not be greater than 253 characters.")
    event = item.get("event")  # canonical names, plus Mailgun's legacy aliases (``open``, ``bounce`` …)
    event_type = parse_type(event.strip() if isinstance(event, str) else None, CANONICAL, MAILGUN_ALIASES)
    if item.get("event") is None:
        bad("event", "The event field is required.")
    elif event_type is None:
        bad("event", f"The event must be one of: {', '.join(CANONICAL)}.")
    recipient = item.get("recipient")
    if not isinstance(recipient, str) or not recipient.strip():
        bad("recipient", "The recipient field is required.")
    elif len(recipient) > MAX_STRING:
        bad("recipient", "The recipient is too long.")
    timestamp = item.get("timestamp")
    occurred: float | None = None
    if timestamp is not None:
        if isinstance(timestamp, bool) or not isinstance(timestamp, int | float) or not math.isfinite(timestamp) \
                or timestamp < 0 or timestamp > MAX_TIMESTAMP:
            bad("timestamp", "The timestamp must be epoch seconds.")
        else:
            occurred = float(timestamp)
    for name in OBJECT_FIELDS:
        if item.get(name) is not None and not isinstance(item[name], dict):
            bad(name, f"The {name} field must be an object.")
    headers = item.get("message", {}).get("headers") if isinstance(item.get("message"), dict) else None
    if headers is not None and not isinstance(headers, dict):
        bad("message.headers", "The message headers must be an object.")
    for name in STRING_FIELDS:
        if item.get(name) is not None and not isinstance(item[name], str):
            bad(name, f"The {name} field must be a string.")
    tags = item.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)):
        bad("tags", "The tags field must be an array of strings.")
    if sum(len(v) for v in errors.values()) != before:
        return None
    assert isinstance(domain, str) and event_type is not None
    return IncomingEvent(
        event_id=event_id if isinstance(event_id, str) else None,
        domain=domain.strip().rstrip(".").lower(),
        event_type=event_type,
        occurred_at=occurred,
        fields=item,
    )


def parse_events(body: object) -> tuple[list[IncomingEvent], bool]:
    """Validate an ingest body (one object or an array); return the items and whether it was an array.

    The whole batch is refused if any item is invalid, so a client never has to work out which half
    of its request was stored.
    """
    if isinstance(body, dict):
        items, many = [body], False
    elif isinstance(body, list):
        items, many = body, True
        if not items:
            raise ValidationFailed.field("body", "At least one event is required.")
        if len(items) > MAX_BATCH:
            raise ValidationFailed.field("body", f"At most {MAX_BATCH} events per request.")
    else:
        raise ValidationFailed.field("body", "The body must be a JSON object or an array of objects.")
    deep = too_deep(body)
    if deep is not None:  # named by the event and its field that nest too deep: "0.user-variables"
        raise ValidationFailed({".".join(str(part) for part in deep[:2 if many else 1]) or "body": [TOO_DEEP]})
    errors: dict[str, list[str]] = {}
    parsed = [_check_item(item, f"{i}." if many else "", errors) for i, item in enumerate(items)]
    if errors:
        raise ValidationFailed(errors)
    return [p for p in parsed if p is not None], many


def build_events(
    account: Account,
    items: Sequence[IncomingEvent],
    domains: dict[str, Domain],
    now: float | None = None,
    many: bool = False,
    traceparent: str | None = None,
) -> list[NewEvent]:
    """Canonical events for validated items; a domain this account does not own is "not found", an
    event whose canonical JSON is over ``MAX_EVENT_BYTES`` is invalid (``many``: the body was an array)."""
    now = time.time() if now is None else now
    out: list[NewEvent] = []
    too_big: dict[str, list[str]] = {}
    for index, item in enumerate(items):
        domain = domains.get(item.domain)
        if domain is None or domain.account_id != account.id:
            raise DomainNotFound()
        event_id = item.event_id or new_event_id()
        occurred = item.occurred_at if item.occurred_at is not None else now
        data = canonical_event(item.event_type, item.fields, event_id=event_id, domain=domain.name,
                               account_guid=account.guid, occurred_at=occurred)
        payload = dumps(data)
        if len(payload) > MAX_EVENT_BYTES:
            too_big.setdefault(str(index) if many else "body", []).append(
                f"An event may not be larger than {MAX_EVENT_BYTES} bytes as JSON.")
        out.append(NewEvent(event_id, account.id, domain.id, item.event_type, occurred, now, payload.decode(),
                            recipient_of(item.fields), from_event(item.event_type, item.fields, occurred),
                            traceparent))
    if too_big:
        raise ValidationFailed(too_big)
    return out


def targets_for(event_type: str, account_id: int, domain_id: int, webhooks: Iterable[Webhook],
                payload: str | None = None) -> list[Target]:
    """The fan-out rule for one event (see the module docstring). A subscription whose filters the event
    (``payload``, its canonical JSON) does not match is no target: no row at all, not even ``failed``;
    it is dropped before de-duplication, so another row with the same URL may still take the event."""
    candidates = [w for w in webhooks if w.deleted_at is None and w.event_type == event_type
                  and w.account_id == account_id and (w.domain_id == domain_id or w.domain_id is None)]
    candidates.sort(key=lambda w: (w.domain_id is None, w.id))
    seen: set[tuple[str, str]] = set()
    out: list[Target] = []
    event_data: dict[str, Any] | None = None  # decoded once, and only if a candidate has filters
    for hook in candidates:
        filters = hook.settings.filters
        if filters is not NO_FILTERS and not filters.empty:
            if event_data is None:
                event_data = orjson.loads(payload) if payload else {}
            if not event_matches(filters, event_data):
                continue
        key = (hook.url, hook.payload_format)
        if key in seen:
            continue
        seen.add(key)
        reason = None
        if hook.disabled_at is not None:
            reason = webhook_disabled_error(hook.disabled_reason)
        out.append(Target(hook.id, reason))
    return out


def unique_events(events: Sequence[NewEvent]) -> list[NewEvent]:
    """Drop repeats of the same (domain, id) inside one request: the first one counts."""
    seen: set[tuple[int, str]] = set()
    out: list[NewEvent] = []
    for event in events:
        key = (event.domain_id, event.event_id)
        if key not in seen:
            seen.add(key)
            out.append(event)
    return out


class EventOutbox(Protocol):
    """Where accepted events are stored (the database's intake): each new event with one delivery per
    target of ``targets_for``, in one transaction."""

    async def ingest(self, events: Sequence[NewEvent]) -> list[bool]:
        """Store the events durably; ``True`` per event that was new (a known (domain, id) is left alone)."""
        ...


class Intake:
    """Accepts events for an account: validate, resolve domains, store with the fan-out of
    ``targets_for`` (one transaction, through an ``EventOutbox``)."""

    # Domains are never deleted or moved between accounts, so a found domain can be remembered;
    # a miss is not cached (the domain may be added a moment later).
    DOMAIN_CACHE_SECONDS = 60.0

    def __init__(self, store: DomainLookup, outbox: EventOutbox) -> None:
        self.store = store
        self.outbox = outbox
        self._domains: dict[tuple[int, str], tuple[float, Domain]] = {}

    async def _domain(self, account: Account, name: str) -> Domain:
        now = time.monotonic()
        cached = self._domains.get((account.id, name))
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await find_domain(self.store, account, name)
        if len(self._domains) > 10_000:
            self._domains.clear()
        self._domains[(account.id, name)] = (now + self.DOMAIN_CACHE_SECONDS, found)
        return found

    async def ingest(self, account: Account, body: object, only_domain: str | None = None,
                     traceparent: str | None = None) -> tuple[list[str], bool, int]:
        """Return the event ids in request order, whether the body was an array, and how many were new.
        ``only_domain``: the key may post for this domain only; another is answered as an unknown one.
        ``traceparent``: the request's trace context, stored with each event (opaque text here)."""
        items, many = parse_events(body)
        domains: dict[str, Domain] = {}
        for name in {item.domain for item in items}:
            domains[name] = await self._domain(account, name)
            if only_domain is not None and domains[name].name != only_domain:
                raise DomainNotFound()
        events = build_events(account, items, domains, many=many, traceparent=traceparent)
        flags = await self.outbox.ingest(unique_events(events))
        return [e.event_id for e in events], many, sum(flags)
