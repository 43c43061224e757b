"""Pace and order per subscription, in the database: which claimed deliveries of a rate-limited or FIFO
subscription may start now, and where the others wait.

Only claimed jobs of such subscriptions come here (``worker.pace`` picks them out of a claim); the claim
statement itself is unchanged, so subscriptions without settings pay nothing. Every decision for one
webhook is taken under its ``webhook_pace`` row lock (``SELECT … FOR UPDATE`` on PostgreSQL, the one
writer of ``BEGIN IMMEDIATE`` on SQLite): several workers share one rate and one FIFO head.

- **Rate** (``rate_limit_per_second`` = r): starts are 1/r apart. A claimed job gets the next start time
  ``max(now, next_start_at)`` if that falls within ``horizon`` (the worker holds it until then); the
  others, and every other due row of the subscription, are handed back with their own future due
  times, 1/r apart after those already given (``backlog_until``), in delivery order. So a backlog is
  spread over time once and is not claimed again and again, nor does it fill claims of others.
- **FIFO**: only the head (the lowest delivery id still queued) may be in flight, and only when no other
  delivery of the subscription is. Every other queued row is *parked*: pending with no due time
  (``next_attempt_at`` NULL), which no claim sees. Whoever finds the subscription with nothing in flight
  and a parked head un-parks it (``advance``): the gate itself, the worker after writing the head's
  result, and a periodic ``sweep`` (a worker that died between the two).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from mailhooks.core.deliveries import Claimed, DeliveryStatus
from mailhooks.core.subscriptions import Ordering, SubscriptionSettings
from mailhooks.db import schema as t
from mailhooks.db.database import Database

_PENDING = f"'{DeliveryStatus.PENDING}'"
_DELIVERING = f"'{DeliveryStatus.DELIVERING}'"

_LOCK_PG = text("SELECT next_start_at, backlog_until FROM webhook_pace WHERE webhook_id = :w FOR UPDATE")
_LOCK_SQLITE = text("SELECT next_start_at, backlog_until FROM webhook_pace WHERE webhook_id = :w")
_SAVE = text("UPDATE webhook_pace SET next_start_at = :next_start, backlog_until = :backlog WHERE webhook_id = :w")
# Claimed rows handed back to the queue, due at :due (NULL: parked), if this owner still holds them.
_HAND_BACK = text(
    f"UPDATE deliveries SET status = {_PENDING}, next_attempt_at = :due, lease_owner = NULL, "
    "lease_expires_at = NULL, updated_at = :now WHERE id = :id AND lease_owner = :owner"
)
# The subscription's due rows, given start times 1/r apart from :base in delivery order.
_SPREAD = text(
    "UPDATE deliveries SET next_attempt_at = CAST(:base AS DOUBLE PRECISION) + (s.n - 1) * "
    "CAST(:step AS DOUBLE PRECISION) FROM (SELECT id, row_number() OVER "
    f"(ORDER BY id) AS n FROM deliveries WHERE webhook_id = :w AND {t.IN_QUEUE_SQL} AND status = {_PENDING} "
    "AND next_attempt_at <= :now) AS s WHERE deliveries.id = s.id"
)
_HEAD = text(f"SELECT id, next_attempt_at FROM deliveries WHERE webhook_id = :w AND {t.IN_QUEUE_SQL} "
             "ORDER BY id LIMIT 1")
_IN_FLIGHT = text(f"SELECT id FROM deliveries WHERE webhook_id = :w AND {t.IN_QUEUE_SQL} "
                  f"AND status = {_DELIVERING}")
_PARK_DUE = text(f"UPDATE deliveries SET next_attempt_at = NULL WHERE webhook_id = :w AND {t.IN_QUEUE_SQL} "
                 f"AND status = {_PENDING} "
                 "AND next_attempt_at <= :now AND id <> :head")
_UNPARK = text(f"UPDATE deliveries SET next_attempt_at = :now WHERE id = :id AND status = {_PENDING} "
               "AND next_attempt_at IS NULL")
_FIFO_WEBHOOKS = text(f"SELECT id FROM webhooks WHERE ordering = '{Ordering.FIFO}'")
# Parked rows whose subscription is no longer FIFO (or is deleted or disabled): due now, in one go.
_UNPARK_ORPHANS = text(
    f"UPDATE deliveries SET next_attempt_at = :now WHERE {t.IN_QUEUE_SQL} AND status = {_PENDING} "
    "AND next_attempt_at IS NULL "
    f"AND webhook_id IN (SELECT id FROM webhooks WHERE ordering <> '{Ordering.FIFO}' "
    "OR deleted_at IS NOT NULL OR disabled_at IS NOT NULL)"
)


def needs_pace(settings: SubscriptionSettings) -> bool:
    return settings.rate_limit_per_second is not None or settings.ordering == Ordering.FIFO


@dataclass(frozen=True, slots=True)
class Admitted:
    """A claimed job that may start at ``start_at`` (epoch seconds; now or a little later)."""

    job: Claimed
    start_at: float


class PaceGate:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def admit(self, owner: str, jobs: Sequence[Claimed], horizon: float) -> list[Admitted]:
        """Of ``jobs`` (claimed by ``owner``, each of a subscription that ``needs_pace``), those that may
        start within ``horizon`` seconds; the rest are handed back to the queue in the same transaction."""
        by_webhook: dict[int, list[Claimed]] = {}
        for job in sorted(jobs, key=lambda j: j.id):
            by_webhook.setdefault(job.webhook_id, []).append(job)
        admitted: list[Admitted] = []
        now = time.time()
        async with self.db.write() as conn:
            for webhook_id, its_jobs in sorted(by_webhook.items()):  # one lock order: no deadlock between workers
                admitted += await self._admit(conn, owner, webhook_id, its_jobs, now, horizon)
        return admitted

    async def advance(self, webhook_ids: Iterable[int]) -> set[int]:
        """Un-park the head of each FIFO subscription that has nothing in flight (after a head finished).
        Returns the subscriptions that still had a delivery in flight."""
        now = time.time()
        busy: set[int] = set()
        async with self.db.write() as conn:
            for webhook_id in sorted(set(webhook_ids)):
                await self._lock(conn, webhook_id, now)
                if not await self._advance(conn, webhook_id, now):
                    busy.add(webhook_id)
            if len(busy) < len(set(webhook_ids)):
                await self.db.notify(conn)  # other workers: a row may have become due
        return busy

    async def sweep(self) -> None:
        """What a worker that died between writing a FIFO head's result and un-parking the next leaves
        behind, and rows parked under a FIFO setting since removed: both made due again."""
        now = time.time()
        async with self.db.write() as conn:
            await conn.execute(_UNPARK_ORPHANS, {"now": now})
            fifo = [row[0] for row in await conn.execute(_FIFO_WEBHOOKS)]
        if fifo:
            await self.advance(fifo)

    # ------------------------------------------------------------------ one subscription, under its lock
    async def _admit(self, conn: AsyncConnection, owner: str, webhook_id: int, jobs: list[Claimed], now: float,
                     horizon: float) -> list[Admitted]:
        settings = jobs[0].settings
        next_start, backlog_until = await self._lock(conn, webhook_id, now)
        candidates = jobs
        if settings.ordering == Ordering.FIFO:
            candidates = await self._fifo_head(conn, owner, webhook_id, jobs, now)
        rate = settings.rate_limit_per_second
        if not rate:
            await self._advance(conn, webhook_id, now)
            return [Admitted(job, now) for job in candidates]
        step = 1.0 / rate
        admitted: list[Admitted] = []
        for job in candidates:
            start = max(now, next_start)
            if start > now + horizon:
                break
            admitted.append(Admitted(job, start))
            next_start = start + step
        late = candidates[len(admitted):]
        if late and settings.ordering == Ordering.FIFO:
            await self._hand_back(conn, owner, late, next_start, now)  # the head only: the rest is parked
        elif late:
            await self._hand_back(conn, owner, late, now, now)
            base = max(backlog_until, next_start)
            spread = await conn.execute(_SPREAD, {"base": base, "step": step, "w": webhook_id, "now": now})
            backlog_until = base + int(spread.rowcount or 0) * step
        await conn.execute(_SAVE, {"next_start": next_start, "backlog": backlog_until, "w": webhook_id})
        if settings.ordering == Ordering.FIFO:
            await self._advance(conn, webhook_id, now)
        return admitted

    async def _lock(self, conn: AsyncConnection, webhook_id: int, now: float) -> tuple[float, float]:
        """The subscription's pace row, created on first use and locked until the transaction ends."""
        await conn.execute(self.db.insert(t.webhook_pace).values(webhook_id=webhook_id, next_start_at=now,
                                                                 backlog_until=now).on_conflict_do_nothing())
        row = (await conn.execute(_LOCK_PG if self.db.postgres else _LOCK_SQLITE, {"w": webhook_id})).one()
        return float(row[0]), float(row[1])

    async def _fifo_head(self, conn: AsyncConnection, owner: str, webhook_id: int, jobs: list[Claimed],
                         now: float) -> list[Claimed]:
        """The claimed job that is the subscription's head with nothing else in flight (if any); the other
        claimed jobs and every other due row are parked."""
        head = (await conn.execute(_HEAD, {"w": webhook_id})).first()
        claimed_ids = {j.id for j in jobs}
        others_in_flight = [row[0] for row in await conn.execute(_IN_FLIGHT, {"w": webhook_id})
                            if row[0] not in claimed_ids]
        head_id = head[0] if head is not None else None
        chosen = [j for j in jobs if j.id == head_id and not others_in_flight]
        parked = [j for j in jobs if j.id != head_id or others_in_flight]
        await self._hand_back(conn, owner, parked, None, now)
        await conn.execute(_PARK_DUE, {"w": webhook_id, "now": now, "head": -1 if head_id is None else head_id})
        return chosen

    @staticmethod
    async def _advance(conn: AsyncConnection, webhook_id: int, now: float) -> bool:
        """With nothing of the FIFO subscription in flight (a job just admitted counts), a parked head is
        made due now. False when something was in flight."""
        if (await conn.execute(_IN_FLIGHT, {"w": webhook_id})).first() is not None:
            return False
        head = (await conn.execute(_HEAD, {"w": webhook_id})).first()
        if head is not None and head[1] is None:
            await conn.execute(_UNPARK, {"id": head[0], "now": now})
        return True

    @staticmethod
    async def _hand_back(conn: AsyncConnection, owner: str, jobs: Sequence[Claimed], due: float | None,
                         now: float) -> None:
        if jobs:
            await conn.execute(_HAND_BACK, [{"due": due, "now": now, "id": j.id, "owner": owner} for j in jobs])
