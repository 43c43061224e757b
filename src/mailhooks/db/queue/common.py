"""What both queue backends share: the claimed row's columns, and the statements that are the same SQL
on PostgreSQL and SQLite (off the hot path: releases, webhook health, shutdown, retention, figures)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailhooks.core.deliveries import FINISHED, Claimed, DeliveryStatus, Outcome
from mailhooks.core.operational import OperationalKind, Transition
from mailhooks.core.outcomes import auto_disable, endpoint_health
from mailhooks.core.subscriptions import settings_from_columns
from mailhooks.db import schema as t
from mailhooks.db.database import Database
from mailhooks.db.operational import note_transitions, webhook_transitions

# A claim returns, per delivery ``c``, everything needed to send it: the event, the webhook, the account's
# signing keys, the domain's secret and the subscription's settings (read positionally by ``claimed``).
CLAIM_COLUMNS = ("c.id, c.event_pk, c.webhook_id, c.attempts, c.lease_expires_at, e.event_id, e.event_type, "
                 "e.payload, w.url, w.payload_format, w.deleted_at, w.disabled_at, w.disabled_reason, "
                 "a.signing_key, dm.secret AS domain_secret, w.headers, w.filters, w.rate_limit_per_second, "
                 "w.timeout_seconds, w.retry_schedule, w.ordering, a.previous_signing_key, a.previous_key_until, "
                 "e.traceparent")
CLAIM_JOINS = ("JOIN events e ON e.id = c.event_pk JOIN webhooks w ON w.id = c.webhook_id "
               "JOIN accounts a ON a.id = e.account_id JOIN domains dm ON dm.id = e.domain_id")

RETENTION_LOCK = 0x6D68707572676521  # PostgreSQL advisory lock key of the retention pass ("mhpurge!")
LOCK_TIMEOUT = 5.0  # seconds for taking or giving back that lock


def plain_batch(outcomes: Sequence[Outcome], releases: Sequence[int]) -> bool:
    """Whether a batch of results can take a backend's one-transaction path: nothing handed back, no
    failing streak started and nothing disabled, so its only health change is answered webhooks' streaks
    ending. Nothing in it is exhausted either: an attempt that fails its delivery is an endpoint failure."""
    return not releases and not any(o.endpoint_failure or o.disable_reason for o in outcomes)


def claimed(row: Any) -> Claimed:
    """A driver row of ``CLAIM_COLUMNS`` as a job."""
    disabled_at = row[11]
    return Claimed(
        id=row[0], event_pk=row[1], webhook_id=row[2], attempts=row[3] or 0, lease_expires_at=row[4],
        event_id=row[5], event_type=row[6], payload=row[7], url=row[8], payload_format=row[9],
        webhook_deleted=row[10] is not None,
        webhook_disabled_reason=(row[12] or "disabled") if disabled_at is not None else None,
        signing_key=row[13], domain_secret=row[14],
        settings=settings_from_columns(row[15], row[16], row[17], row[18], row[19], row[20]),
        previous_signing_key=row[21], previous_key_until=row[22] or 0.0, traceparent=row[23],
    )


class SqlQueue:
    """The part of ``DeliveryQueue`` written once for both backends (subclasses add claim and record)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def release_owned(self, owner: str) -> int:
        async with self.db.write() as conn:
            return await self._release(conn, owner, None, time.time())

    async def purge(self, cutoff: float, batch: int = 1000) -> int:
        """One short transaction: up to ``batch`` finished deliveries created before ``cutoff``, oldest first
        (``ix_deliveries_created``), with their attempts (``attempts.delivery_id``) and the events they leave
        without a delivery. Only once the deliveries run short, a sweep for other orphan events (those no
        subscription matched): during a backlog it would scan every old event still referred to, each batch."""
        d, e = t.deliveries, t.events
        async with self.db.write(config=False) as conn:
            # Locked, so that a replay re-queueing one of them meanwhile either waits for this transaction or
            # makes it skip the row (re-checked under the lock: it is no longer finished).
            victims = (await conn.execute(
                select(d.c.id, d.c.event_pk).where(d.c.created_at < cutoff, d.c.status.in_(FINISHED))
                .order_by(d.c.created_at).limit(batch).with_for_update(skip_locked=True))).all()
            ids = [row.id for row in victims]
            events_gone = 0
            if ids:
                await conn.execute(delete(t.attempts).where(t.attempts.c.delivery_id.in_(ids)))
                await conn.execute(delete(d).where(d.c.id.in_(ids)))
                left_alone = sorted({row.event_pk for row in victims})
                result = await conn.execute(delete(e).where(
                    e.c.id.in_(left_alone), e.c.received_at < cutoff,
                    ~select(d.c.id).where(d.c.event_pk == e.c.id).exists()))
                events_gone = int(result.rowcount or 0)
            if len(ids) < batch:
                orphans = (select(e.c.id).where(e.c.received_at < cutoff,
                                                ~select(d.c.id).where(d.c.event_pk == e.c.id).exists())
                           .order_by(e.c.received_at).limit(batch - len(ids)).scalar_subquery())
                result = await conn.execute(delete(e).where(e.c.id.in_(orphans)))
                events_gone += int(result.rowcount or 0)
        return len(ids) + events_gone

    @asynccontextmanager
    async def retention_turn(self) -> AsyncIterator[bool]:
        """Whether this process may purge now: on PostgreSQL one process at a time (a session advisory lock
        on a connection held for the pass, released when it ends or the connection drops); SQLite has a
        single writer anyway."""
        if not self.db.postgres:
            yield True
            return
        async with self.db.raw() as raw:
            mine = bool(await raw.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK, timeout=LOCK_TIMEOUT))
            try:
                yield mine
            finally:
                if mine:
                    await raw.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK, timeout=LOCK_TIMEOUT)

    async def queue_stats(self) -> tuple[int, float | None]:
        d = t.deliveries
        now = time.time()
        async with self.db.read() as conn:
            row = (await conn.execute(
                select(func.count(), func.min(d.c.next_attempt_at))
                .where(text(t.IN_QUEUE_SQL), d.c.next_attempt_at <= now))).one()
        return int(row[0]), row[1]

    # ------------------------------------------------------------------ parts of ``record``
    @staticmethod
    async def _release(conn: AsyncConnection, owner: str, ids: Sequence[int] | None, now: float) -> int:
        """Hand claimed rows back to the queue unsent, due now: those of ``ids`` (every one when ``None``)
        that ``owner`` still holds. Returns how many."""
        if ids is not None and not ids:
            return 0
        d = t.deliveries
        held = [d.c.lease_owner == owner, d.c.status == DeliveryStatus.DELIVERING]
        if ids is not None:
            held.insert(0, d.c.id.in_(list(ids)))
        result = await conn.execute(
            update(d).where(*held)
            .values(status=DeliveryStatus.PENDING, next_attempt_at=now, lease_owner=None, lease_expires_at=None,
                    updated_at=now)
        )
        return int(result.rowcount or 0)

    @staticmethod
    async def _webhook_health(conn: AsyncConnection, outcomes: Sequence[Outcome], now: float,
                              disable_after: float | None) -> None:
        """The webhooks' failing streaks and auto-disable; each transition (a streak begins or ends, a
        webhook is disabled) is noted as an operational event in this same transaction, only for the rows
        this statement actually changed: a batch written again notes nothing twice."""
        w = t.webhooks.c
        changed = (w.id, w.account_id, w.payload_format)
        answered, failing = endpoint_health(outcomes)
        transitions: list[Transition] = []
        if answered:
            rows = await conn.execute(update(t.webhooks).where(w.id.in_(answered), w.failing_since.is_not(None))
                                      .values(failing_since=None).returning(*changed))
            transitions += webhook_transitions(OperationalKind.WEBHOOK_RECOVERED, rows)
        if failing:
            ids = failing
            rows = await conn.execute(update(t.webhooks).where(w.id.in_(ids), w.failing_since.is_(None))
                                      .values(failing_since=now).returning(*changed))
            transitions += webhook_transitions(OperationalKind.WEBHOOK_FAILING, rows, outcomes)
            if disable_after is not None:
                rule = auto_disable(now, disable_after)
                rows = await conn.execute(
                    update(t.webhooks)
                    .where(w.id.in_(ids), w.disabled_at.is_(None), w.failing_since <= rule.cutoff)
                    .values(disabled_at=now, disabled_reason=rule.reason, modified_at=now).returning(*changed)
                )
                transitions += webhook_transitions(OperationalKind.WEBHOOK_DISABLED, rows, outcomes, rule.reason)
        for o in outcomes:
            if o.disable_reason:
                rows = await conn.execute(update(t.webhooks).where(w.id == o.webhook_id, w.disabled_at.is_(None))
                                          .values(disabled_at=now, disabled_reason=o.disable_reason, modified_at=now)
                                          .returning(*changed))
                transitions += webhook_transitions(OperationalKind.WEBHOOK_DISABLED, rows, outcomes,
                                                   o.disable_reason)
        await note_transitions(conn, transitions, now)
