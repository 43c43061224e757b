"""Replays and back-fills of a time range: what an operator may ask for, and the rules a replay follows.

A **replay** gives every matching delivery of a domain one more attempt. It is the same row queued again,
so its ``webhook-id`` (``core.message_ids``: a MAC of the delivery id) stays the one the receiver saw
before, and the receiver can de-duplicate.

A **back-fill** (``to_webhook``) gives a subscription, possibly one created after the events, the domain's
events of the range as NEW deliveries: one per event and subscription, never two, however often it runs.

The range is the time mailhooks *received* the event (``events.received_at``, which is also its deliveries'
``created_at``), not the event's own ``timestamp``: that one is the sender's claim and may be anything,
while the time received is what the operator saw on the dashboard when things went wrong.

Replays run in the background in small batches (``worker.replays``); this module has no storage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from mailhooks.core.errors import NotFound, ValidationFailed

MAX_TIME = 253402300799.0  # 9999-12-31: beyond it a time is a mistake, not a range
GUID_MAX = 64


class ReplayState(StrEnum):
    QUEUED = "queued"  # waiting for a worker
    RUNNING = "running"  # a worker holds it (or held it and crashed: the next one resumes at the cursor)
    DONE = "done"
    FAILED = "failed"  # stopped for good (the domain or the target subscription is gone)


UNFINISHED = (ReplayState.QUEUED, ReplayState.RUNNING)


class ReplayScope(StrEnum):
    """Which of the range's deliveries a replay gives one more attempt."""

    FAILED = "failed"  # only those that gave up (failed); like the older per-domain recovery
    ALL = "all"  # every one, whatever its status (one in flight is left to its attempt and counted skipped)


class ReplayNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Replay not found", what="replay")


@dataclass(frozen=True)
class ReplayRequest:
    """``POST /v1/replays`` as validated: names still as the caller gave them (the storage resolves them
    within the account, so another account's domain or subscription is simply not found)."""

    domain: str
    since: float
    until: float | None
    scope: ReplayScope
    webhook: str | None  # narrows a replay to one subscription's deliveries
    to_webhook: str | None  # a back-fill into this subscription instead

    @property
    def backfill(self) -> bool:
        return self.to_webhook is not None


FIELDS = {"domain", "since", "until", "webhook", "status", "to_webhook"}


def _time(body: dict[str, Any], name: str, errors: dict[str, list[str]]) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 <= value <= MAX_TIME:
        errors.setdefault(name, []).append(f"{name} must be a time in epoch seconds.")
        return None
    return float(value)


def _name(body: dict[str, Any], name: str, errors: dict[str, list[str]], max_length: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_length or not value.isprintable():
        errors.setdefault(name, []).append(f"{name} must be a non-empty string of at most {max_length} characters.")
        return None
    return value


def parse_replay_request(body: Any) -> ReplayRequest:
    """Validate a request body; ``ValidationFailed`` names every field at fault."""
    if not isinstance(body, dict):
        raise ValidationFailed.field("body", "The body must be a JSON object.")
    errors: dict[str, list[str]] = {}
    for unknown in sorted(set(body) - FIELDS):
        errors.setdefault(unknown, []).append(f"Unknown field; expected some of {', '.join(sorted(FIELDS))}.")
    domain = _name(body, "domain", errors, 253)
    if "domain" not in body:
        errors.setdefault("domain", []).append("domain is required.")
    since = _time(body, "since", errors)
    if "since" not in body:
        errors.setdefault("since", []).append("since is required (epoch seconds).")
    until = _time(body, "until", errors)
    if since is not None and until is not None and until <= since:
        errors.setdefault("until", []).append("until must be after since.")
    scope: ReplayScope | None = None
    if body.get("status") in tuple(ReplayScope):
        scope = ReplayScope(body["status"])
    else:
        errors.setdefault("status", []).append('status must be "failed" or "all".')
    webhook = _name(body, "webhook", errors, GUID_MAX)
    to_webhook = _name(body, "to_webhook", errors, GUID_MAX)
    if to_webhook is not None:
        # A back-fill makes new deliveries from the events; there are no earlier deliveries of the target to
        # pick by status or by subscription.
        if scope is ReplayScope.FAILED:
            errors.setdefault("status", []).append('A back-fill (to_webhook) takes every event: status must be "all".')
        if webhook is not None:
            errors.setdefault("webhook", []).append("webhook narrows a replay; a back-fill (to_webhook) takes none.")
    if errors:
        raise ValidationFailed(errors)
    assert domain is not None and since is not None and scope is not None
    return ReplayRequest(domain, since, until, scope, webhook, to_webhook)


# ---------------------------------------------------------------------- running
@dataclass(frozen=True)
class ReplayJob:
    """A claimed replay as its runner needs it: ids resolved, and where it stands."""

    id: int
    account_id: int
    domain_id: int
    since: float
    until: float | None
    scope: ReplayScope
    webhook_id: int | None
    to_webhook_id: int | None
    to_event_type: str | None  # the back-fill target's event type: the only events it takes
    cursor: int | None  # the last row id done; ``None``: not started (the range's ids are not bounded yet)
    end_id: int | None  # the last row id that may match (fixed at the start: later rows are not the range's)

    @property
    def finished(self) -> bool:
        return self.cursor is not None and self.end_id is not None and self.cursor >= self.end_id

    def at(self, cursor: int) -> ReplayJob:
        return replace(self, cursor=cursor)


# Replayed rows fall due this long after they are queued. Live work is due the moment it arrives, and the
# queue is claimed in due order, so an event ingested meanwhile goes out before them: a replay never puts
# its backlog in front of new events.
DUE_DELAY = 0.2
# The runner queues its next batch only while fewer than this many batches' rows are due (live or replayed):
# the queue drains between batches, and live latency pays for at most that much work ahead of it.
BACKLOG_BATCHES = 1
# Row ids a range's first (last) row by time may lie beyond the first (last) id found by time: ids are
# given at insert and times just before it, so concurrent ingests interleave a little; cheap to over-scan.
ID_SLACK = 50_000


def progress(cursor: int | None, start_id: int | None, end_id: int | None, state: ReplayState) -> float:
    """How far through its range of row ids a replay is, 0.0 to 1.0."""
    if state is ReplayState.DONE:
        return 1.0
    if cursor is None or start_id is None or end_id is None or end_id <= start_id:
        return 0.0
    return max(0.0, min(1.0, (cursor - start_id) / (end_id - start_id)))
