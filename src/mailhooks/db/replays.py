"""Replays and back-fills in SQL (``core.replays``): the requests, their claim under a lease, and the
batches that queue deliveries again (or insert a back-fill's new ones) together with the cursor.

A batch is one window of row ids (``id > cursor AND id <= cursor + window``): a range scan of the primary
key, bounded whatever the size of the table, and the cursor is written in the same transaction as the
batch's rows, so a crashed worker's successor resumes exactly after the last batch that committed.

Every query is scoped by account id: another account's rows never match, and its replays are not found.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy import ColumnElement, exists, func, insert, literal, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailhooks.core.audit import AuditAction
from mailhooks.core.deliveries import DeliveryStatus
from mailhooks.core.replays import (
    ID_SLACK,
    UNFINISHED,
    ReplayJob,
    ReplayRequest,
    ReplayScope,
    ReplayState,
)
from mailhooks.core.subscriptions import Filters, event_matches, filters_from_json
from mailhooks.db import audit
from mailhooks.db import schema as t
from mailhooks.db.database import Database

r = t.replays


class LostLease(Exception):
    """Another worker holds the replay now (this one was too slow to renew its lease)."""


class ReplayStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ requests and reads
    async def create(self, account_id: int, domain_id: int, request: ReplayRequest, webhook_id: int | None,
                     to_webhook_id: int | None) -> str:
        guid = str(uuid.uuid4())
        now = time.time()
        async with self.db.write() as conn:
            await conn.execute(insert(r).values(
                guid=guid, account_id=account_id, domain_id=domain_id, webhook_id=webhook_id,
                to_webhook_id=to_webhook_id, scope=request.scope.value, since=request.since, until=request.until,
                state=ReplayState.QUEUED.value, created_at=now, updated_at=now))
            await audit.record_in(conn, account_id, AuditAction.REPLAY_STARTED,
                                  f"replay {guid} {request.scope.value} since {request.since:g}")
        return guid

    def _select(self, account_id: int) -> Any:
        w, tw, dm = t.webhooks.alias("w"), t.webhooks.alias("tw"), t.domains
        return (select(r, dm.c.name.label("domain"), w.c.guid.label("webhook"), tw.c.guid.label("to_webhook"))
                .join(dm, dm.c.id == r.c.domain_id)
                .outerjoin(w, w.c.id == r.c.webhook_id)
                .outerjoin(tw, tw.c.id == r.c.to_webhook_id)
                .where(r.c.account_id == account_id))

    async def get(self, account_id: int, guid: str) -> dict[str, Any] | None:
        async with self.db.read() as conn:
            row = (await conn.execute(self._select(account_id).where(r.c.guid == guid))).first()
        return None if row is None else dict(row._mapping)

    async def recent(self, account_id: int, limit: int = 20) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = await conn.execute(self._select(account_id).order_by(r.c.id.desc()).limit(limit))
            return [dict(row._mapping) for row in rows]

    # ------------------------------------------------------------------ the claim
    async def claim(self, owner: str, lease_seconds: float) -> ReplayJob | None:
        """Lease the oldest unfinished replay nobody holds (queued, or left by a worker that stopped or
        crashed), or ``None``. Two back-fills into the same subscription never run at once: each checks
        for the target's existing rows before inserting, and only one at a time makes that check sound."""
        now = time.time()
        free = or_(r.c.lease_expires_at.is_(None), r.c.lease_expires_at < now)
        other = r.alias("other")
        busy_target = exists().where(other.c.to_webhook_id == r.c.to_webhook_id, other.c.id != r.c.id,
                                     other.c.state == ReplayState.RUNNING.value, other.c.lease_expires_at >= now)
        async with self.db.write() as conn:
            row = (await conn.execute(
                select(r.c.id).where(r.c.state.in_([s.value for s in UNFINISHED]), free,
                                     or_(r.c.to_webhook_id.is_(None), ~busy_target))
                .order_by(r.c.id).limit(1))).first()
            if row is None:
                return None
            # Conditional: of two workers that read the same candidate, one update matches, the other none.
            won = await conn.execute(update(r).where(r.c.id == row.id, free).values(
                owner=owner, lease_expires_at=now + lease_seconds, state=ReplayState.RUNNING.value,
                started_at=func.coalesce(r.c.started_at, now), updated_at=now))
            if not won.rowcount:
                return None
            return await _job(conn, row.id)

    async def renew(self, job: ReplayJob, owner: str, lease_seconds: float) -> None:
        async with self.db.write() as conn:
            await _hold(conn, job, owner, lease_seconds)

    async def release(self, job: ReplayJob, owner: str) -> None:
        """Hand a replay under way back (a worker stopping): another worker resumes it at once."""
        async with self.db.write() as conn:
            await conn.execute(update(r).where(r.c.id == job.id, r.c.owner == owner).values(
                owner=None, lease_expires_at=None, updated_at=time.time()))

    async def finish(self, job: ReplayJob, owner: str, state: ReplayState, error: str | None = None) -> None:
        now = time.time()
        async with self.db.write() as conn:
            await conn.execute(update(r).where(r.c.id == job.id, r.c.owner == owner).values(
                state=state.value, error=error, owner=None, lease_expires_at=None, finished_at=now, updated_at=now))

    async def target_gone(self, job: ReplayJob) -> bool:
        """The back-fill's subscription was deleted since the request."""
        if job.to_webhook_id is None:
            return False
        async with self.db.read() as conn:
            row = (await conn.execute(select(t.webhooks.c.deleted_at)
                                      .where(t.webhooks.c.id == job.to_webhook_id))).first()
        return row is None or row.deleted_at is not None

    # ------------------------------------------------------------------ the batches
    async def begin(self, job: ReplayJob, owner: str, lease_seconds: float) -> ReplayJob:
        """Bound the range's row ids (the rows there are now; later ones are not the range's) and count
        what matches; returns the job with its cursor set."""
        backfill = job.to_webhook_id is not None
        table, when = (t.events, t.events.c.received_at) if backfill else (t.deliveries, t.deliveries.c.created_at)
        # Read outside the write transaction: on SQLite a count over a million rows would hold up every
        # writer (ingest) meanwhile.
        async with self.db.read() as conn:
            first = await _first_id_at(conn, table, when, job.since)
            last = (await conn.execute(select(func.max(table.c.id)))).scalar()
            if job.until is not None:
                after = await _first_id_at(conn, table, when, job.until)
                if after is not None and last is not None:
                    last = min(last, after + ID_SLACK)
            start = max(0, first - ID_SLACK - 1) if first is not None else 0
            end = int(last) if first is not None and last is not None else start
            job = replace(job, cursor=start, end_id=end)
            matched = (await conn.execute(select(func.count()).select_from(table).where(
                *_matching(job), table.c.id > start, table.c.id <= end))).scalar()
        async with self.db.write() as conn:
            await _hold(conn, job, owner, lease_seconds, start_id=start, end_id=end, cursor=start,
                        matched=int(matched or 0))
        return job

    async def due_backlog(self, horizon: float, cap: int) -> int:
        """How many queued rows fall due within ``horizon`` seconds (counting stops at ``cap``)."""
        d = t.deliveries
        due = (select(literal(1)).where(text(t.IN_QUEUE_SQL),
                                        d.c.next_attempt_at <= time.time() + horizon).limit(cap).subquery())
        async with self.db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(due))).scalar() or 0)

    async def step(self, job: ReplayJob, owner: str, window: int, due_at: float, lease_seconds: float
                   ) -> tuple[ReplayJob, int, int]:
        """One batch: the next ``window`` row ids. Returns the job moved on, how many rows it queued and
        how many of the window's rows matched."""
        assert job.cursor is not None and job.end_id is not None
        upper = min(job.cursor + window, job.end_id)
        now = time.time()
        async with self.db.write() as conn:
            if job.to_webhook_id is None:
                queued, matched = await _requeue(conn, job, upper, due_at, now)
            else:
                queued, matched = await _backfill(conn, job, upper, due_at, now)
            await _hold(conn, job, owner, lease_seconds, cursor=upper, queued=r.c.queued + queued,
                        skipped=r.c.skipped + (matched - queued))
            if queued:
                await self.db.notify(conn)
        return job.at(upper), queued, matched


def _matching(job: ReplayJob) -> list[ColumnElement[bool]]:
    """The conditions a row of the range must meet: deliveries for a replay, events for a back-fill."""
    if job.to_webhook_id is not None:
        e = t.events.c
        where = [e.account_id == job.account_id, e.domain_id == job.domain_id, e.received_at >= job.since,
                 e.event_type == job.to_event_type]
        if job.until is not None:
            where.append(e.received_at < job.until)
        return where
    d = t.deliveries.c
    where = [d.account_id == job.account_id, d.domain_id == job.domain_id, d.created_at >= job.since]
    if job.until is not None:
        where.append(d.created_at < job.until)
    if job.webhook_id is not None:
        where.append(d.webhook_id == job.webhook_id)
    if job.scope is ReplayScope.FAILED:
        where.append(d.status == DeliveryStatus.FAILED)
    return where


async def _requeue(conn: AsyncConnection, job: ReplayJob, upper: int, due_at: float, now: float) -> tuple[int, int]:
    """Queue the window's matching deliveries again (the same rows: the same ``webhook-id``). One in flight
    is left to its attempt (counted as skipped), as a manual retry leaves it."""
    d = t.deliveries
    in_window = [*_matching(job), d.c.id > job.cursor, d.c.id <= upper]
    matched = (await conn.execute(select(func.count()).select_from(d).where(*in_window))).scalar() or 0
    if not matched:
        return 0, 0
    result = await conn.execute(update(d).where(*in_window, d.c.status != DeliveryStatus.DELIVERING).values(
        status=DeliveryStatus.PENDING, next_attempt_at=due_at, lease_owner=None, lease_expires_at=None,
        updated_at=now))
    return int(result.rowcount or 0), int(matched)


async def _backfill(conn: AsyncConnection, job: ReplayJob, upper: int, due_at: float, now: float
                    ) -> tuple[int, int]:
    """New deliveries of the window's events for the target, except for events it already has one of:
    running the same back-fill again adds nothing."""
    e, d = t.events, t.deliveries
    in_window = [*_matching(job), e.c.id > job.cursor, e.c.id <= upper]
    matched = (await conn.execute(select(func.count()).select_from(e).where(*in_window))).scalar() or 0
    if not matched:
        return 0, 0
    has_one = exists().where(d.c.event_pk == e.c.id, d.c.webhook_id == job.to_webhook_id)
    filters = await _target_filters(conn, job)
    if not filters.empty:
        # The target's filters decide as they would have at ingest (core.subscriptions.event_matches): the
        # window's candidates are read (one batch, bounded) and only the matching ones get a delivery.
        candidates = await conn.execute(select(e.c.id, e.c.account_id, e.c.domain_id, e.c.payload)
                                        .where(*in_window, ~has_one))
        keep = [{"event_pk": row.id, "webhook_id": job.to_webhook_id, "account_id": row.account_id,
                 "domain_id": row.domain_id, "status": DeliveryStatus.PENDING.value, "attempts": 0,
                 "next_attempt_at": due_at, "created_at": now, "updated_at": now}
                for row in candidates if event_matches(filters, json.loads(row.payload))]
        if keep:
            await conn.execute(insert(d), keep)
        return len(keep), int(matched)
    rows = select(e.c.id, literal(job.to_webhook_id), e.c.account_id, e.c.domain_id,
                  literal(DeliveryStatus.PENDING.value), literal(0), literal(due_at), literal(now), literal(now)
                  ).where(*in_window, ~has_one)
    result = await conn.execute(insert(d).from_select(
        ["event_pk", "webhook_id", "account_id", "domain_id", "status", "attempts", "next_attempt_at", "created_at",
         "updated_at"], rows))
    return int(result.rowcount or 0), int(matched)


async def _target_filters(conn: AsyncConnection, job: ReplayJob) -> Filters:
    text = (await conn.execute(select(t.webhooks.c.filters).where(t.webhooks.c.id == job.to_webhook_id))).scalar()
    return filters_from_json(text)


async def _first_id_at(conn: AsyncConnection, table: Any, when: Any, at: float) -> int | None:
    """The id of the first row at or after ``at`` by time (through the time index)."""
    row = (await conn.execute(select(table.c.id).where(when >= at).order_by(when).limit(1))).first()
    return None if row is None else int(row.id)


async def _hold(conn: AsyncConnection, job: ReplayJob, owner: str, lease_seconds: float, **values: Any) -> None:
    """Renew the lease (with ``values``) only while this owner holds it: else ``LostLease``, and the caller's
    transaction, batch and all, rolls back."""
    now = time.time()
    result = await conn.execute(update(r).where(r.c.id == job.id, r.c.owner == owner).values(
        lease_expires_at=now + lease_seconds, updated_at=now, **values))
    if not result.rowcount:
        raise LostLease(job.id)


async def _job(conn: AsyncConnection, replay_id: int) -> ReplayJob:
    tw = t.webhooks.alias("tw")
    row = (await conn.execute(select(r, tw.c.event_type.label("to_event_type"))
                              .outerjoin(tw, tw.c.id == r.c.to_webhook_id).where(r.c.id == replay_id))).one()
    return ReplayJob(id=row.id, account_id=row.account_id, domain_id=row.domain_id, since=row.since, until=row.until,
                     scope=ReplayScope(row.scope), webhook_id=row.webhook_id, to_webhook_id=row.to_webhook_id,
                     to_event_type=row.to_event_type, cursor=row.cursor, end_id=row.end_id)



async def subscription(db: Database, account_id: int, guid: str) -> tuple[int, int | None, str] | None:
    """The account's live subscription ``guid`` as (id, domain id or ``None`` at account level, event type)."""
    w = t.webhooks.c
    async with db.read() as conn:
        row = (await conn.execute(select(w.id, w.domain_id, w.event_type).where(
            w.account_id == account_id, w.guid == guid, w.deleted_at.is_(None)))).first()
    return None if row is None else (int(row.id), row.domain_id, str(row.event_type))
