"""The delivery queue in SQL: bulk ingest, batch claims under a lease, batched result writes, and the
reads behind the native API.

Every hot path is a constant number of statements per *batch*, never per delivery:

- ingest: one batched ``INSERT … ON CONFLICT DO NOTHING RETURNING`` for events (idempotency), one
  batched INSERT for their deliveries, in one transaction (plus ``pg_notify`` on PostgreSQL);
- claim: PostgreSQL runs one statement (``FOR UPDATE SKIP LOCKED`` in a CTE, ``UPDATE … RETURNING``,
  joined to the event payload, webhook, signing key and domain secret) as a prepared asyncpg statement
  in its own implicit transaction: one round trip; SQLite runs a single-statement
  ``UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING`` and one joined SELECT in the same ``BEGIN
  IMMEDIATE`` transaction, through the driver's own calls (no SQLAlchemy compilation on the hot path);
- results: PostgreSQL writes a batch without failures or releases as one statement (attempts inserted
  and deliveries updated from ``unnest`` arrays in data-modifying CTEs, atomic, one round trip); other
  batches, and SQLite, use one transaction inserting the attempts and updating the deliveries with
  ``executemany``.

A claimed row is ``delivering`` and its lease expiry is *also* its ``next_attempt_at``: "due" is then a
single range scan over the partial index ``ix_deliveries_queue`` for new work and expired leases alike.
Result writes only touch rows this owner still holds, so a worker that lost its lease cannot overwrite
the state another worker recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from mailhooks.core.deliveries import FINISHED, Claimed, DeliveryStatus, Outcome
from mailhooks.core.events import NewEvent, targets_for
from mailhooks.core.message_ids import new_message_id_key
from mailhooks.core.models import Webhook
from mailhooks.core.outcomes import auto_disable
from mailhooks.db import schema as t
from mailhooks.db.store import Store

NOTIFY_CHANNEL = "mailhooks_deliveries"
MESSAGE_ID_KEY = "webhook-id"  # its row in instance_secrets
GROUP_COMMIT_MAX = 5000  # events per combined ingest transaction
# Written out literally (not as bound parameters) so that both planners can match the partial index.
IN_QUEUE = text("status IN ('pending', 'delivering')")




def _claim_columns() -> str:
    return ("c.id, c.event_pk, c.webhook_id, c.attempts, c.lease_expires_at, e.event_id, e.event_type, e.payload, "
            "w.url, w.payload_format, w.deleted_at, w.disabled_at, w.disabled_reason, a.signing_key, "
            "dm.secret AS domain_secret")


_JOINS = ("JOIN events e ON e.id = c.event_pk JOIN webhooks w ON w.id = c.webhook_id "
          "JOIN accounts a ON a.id = e.account_id JOIN domains dm ON dm.id = e.domain_id")


def _claimed(row: Any) -> Claimed:
    return Claimed(
        id=row.id, event_pk=row.event_pk, webhook_id=row.webhook_id, attempts=row.attempts or 0,
        lease_expires_at=row.lease_expires_at, event_id=row.event_id, event_type=row.event_type,
        payload=row.payload, url=row.url, payload_format=row.payload_format,
        webhook_deleted=row.deleted_at is not None,
        webhook_disabled_reason=(row.disabled_reason or "disabled") if row.disabled_at is not None else None,
        signing_key=row.signing_key, domain_secret=row.domain_secret,
    )


# PostgreSQL hot path: each statement below is one prepared asyncpg statement run on its own (its own
# implicit transaction), one round trip, instead of BEGIN + statement(s) + COMMIT through SQLAlchemy.
_PG_DUE = "status IN ('pending', 'delivering') AND next_attempt_at <= $1"
_PG_CLAIM_REST = (
    "c AS (UPDATE deliveries d SET status = 'delivering', lease_owner = $3, lease_expires_at = $2, "
    "next_attempt_at = $2, updated_at = $1 FROM due WHERE d.id = due.id "
    "RETURNING d.id, d.event_pk, d.webhook_id, d.attempts, d.lease_expires_at) "
    f"SELECT {_claim_columns()} FROM c {_JOINS}"
)
PG_CLAIM = (
    f"WITH due AS (SELECT id FROM deliveries WHERE {_PG_DUE} "
    "AND webhook_id <> ALL($5::bigint[]) ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED), "
    + _PG_CLAIM_REST
)
# The same, looking only at the first $6 due rows: skipping saturated webhooks costs a bounded scan, not
# one over the whole backlog (a million rows for one slow receiver made every claim a full index scan).
PG_CLAIM_HEAD = (
    f"WITH due AS (SELECT id FROM deliveries WHERE {_PG_DUE} AND webhook_id <> ALL($5::bigint[]) "
    f"AND id IN (SELECT id FROM deliveries WHERE {_PG_DUE} ORDER BY next_attempt_at LIMIT $6) "
    "ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED), "
    + _PG_CLAIM_REST
)
# Attempts, delivery states (only rows ``$2`` still holds) and the webhooks' cleared failing streaks, as
# one statement: atomic like the transaction it replaces. Data-modifying CTEs run whether read or not.
PG_RECORD = (
    "WITH o AS (SELECT * FROM unnest($3::bigint[], $4::varchar[], $5::int[], $6::float8[], $7::int[], $8::text[]) "
    "AS o(id, status, attempts, next_at, code, error)), "
    "u AS (UPDATE deliveries d SET status = o.status, attempts = o.attempts, next_attempt_at = o.next_at, "
    "lease_owner = NULL, lease_expires_at = NULL, last_status_code = o.code, last_error = o.error, updated_at = $1 "
    "FROM o WHERE d.id = o.id AND d.lease_owner = $2 RETURNING d.id), "
    "a AS (INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code, response_excerpt, "
    "error, request_headers) SELECT * FROM unnest($9::bigint[], $10::int[], $11::float8[], $12::float8[], "
    "$13::int[], $14::text[], $15::text[], $16::text[])), "
    "h AS (UPDATE webhooks SET failing_since = NULL WHERE id = ANY($17::bigint[]) AND failing_since IS NOT NULL) "
    "SELECT count(*) FROM u"
)

SQLITE_INSERT_ATTEMPT = ("INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code, "
                         "response_excerpt, error, request_headers) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
SQLITE_UPDATE_DELIVERY = ("UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, lease_owner = NULL, "
                          "lease_expires_at = NULL, last_status_code = ?, last_error = ?, updated_at = ? "
                          "WHERE id = ? AND lease_owner = ?")


def _claimed_record(row: Any) -> Claimed:
    disabled_at = row[11]
    return Claimed(
        id=row[0], event_pk=row[1], webhook_id=row[2], attempts=row[3] or 0, lease_expires_at=row[4],
        event_id=row[5], event_type=row[6], payload=row[7], url=row[8], payload_format=row[9],
        webhook_deleted=row[10] is not None,
        webhook_disabled_reason=(row[12] or "disabled") if disabled_at is not None else None,
        signing_key=row[13], domain_secret=row[14],
    )


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.postgres = store.postgres
        self._ingest_queue: deque[tuple[Sequence[NewEvent], asyncio.Future[list[bool]]]] = deque()
        self._ingest_task: asyncio.Task[None] | None = None
        self._message_id_key: bytes | None = None

    # ------------------------------------------------------------------ ingest
    async def ingest(self, events: Sequence[NewEvent]) -> list[bool]:
        """Store new events with one delivery per target, durably; ``True`` per event that was new.

        A repeated (domain, id) is left alone and gets no deliveries: ingest is idempotent. The
        targets are read inside the same transaction (``core.events.targets_for`` decides), so an
        event sees a consistent set of subscriptions. Requests arriving while a write is under way
        are combined into the next transaction (group commit): each caller still returns only once
        its events are committed, but many small requests share one transaction and one lookup.
        """
        if not events:
            return []
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._ingest_queue.append((events, future))
        if self._ingest_task is None or self._ingest_task.done():
            self._ingest_task = asyncio.create_task(self._ingest_writer())
        return await asyncio.shield(future)

    async def _ingest_writer(self) -> None:
        while self._ingest_queue:
            queued: list[tuple[Sequence[NewEvent], asyncio.Future[list[bool]]]] = []
            count = 0
            while self._ingest_queue and (not queued or count + len(self._ingest_queue[0][0]) <= GROUP_COMMIT_MAX):
                item = self._ingest_queue.popleft()
                queued.append(item)
                count += len(item[0])
            try:
                flags = await self._ingest_now([e for item in queued for e in item[0]])
            except Exception as exc:
                for _, future in queued:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for item_events, future in queued:
                if not future.done():
                    future.set_result(flags[start:start + len(item_events)])
                start += len(item_events)

    async def _ingest_now(self, events: Sequence[NewEvent]) -> list[bool]:
        dialect_insert = pg_insert if self.postgres else sqlite_insert
        inserted: dict[tuple[int, str], int] = {}
        # executemany of one cached statement: SQLAlchemy renders the batches itself ("insertmanyvalues"),
        # instead of compiling a fresh multi-row VALUES statement for every request.
        stmt = (
            dialect_insert(t.events)
            .on_conflict_do_nothing(index_elements=["domain_id", "event_id"])
            .returning(t.events.c.id, t.events.c.domain_id, t.events.c.event_id)
        )
        params = [{"event_id": e.event_id, "account_id": e.account_id, "domain_id": e.domain_id,
                   "event_type": e.event_type, "occurred_at": e.occurred_at, "received_at": e.received_at,
                   "payload": e.payload} for e in events]
        async with self.store.write() as conn:
            for row in await conn.execute(stmt, params):
                inserted[(row.domain_id, row.event_id)] = row.id
            hooks = await self._webhooks(conn, {e.account_id for e in events}, {e.domain_id for e in events},
                                         {e.event_type for e in events}) if inserted else []
            rows: list[dict[str, Any]] = []
            new_flags: list[bool] = []
            for event in events:
                pk = inserted.pop((event.domain_id, event.event_id), None)
                new_flags.append(pk is not None)
                if pk is None:
                    continue
                for target in targets_for(event.event_type, event.account_id, event.domain_id, hooks):
                    disabled = target.disabled_reason is not None
                    rows.append({
                        "event_pk": pk, "webhook_id": target.webhook_id, "account_id": event.account_id,
                        "domain_id": event.domain_id, "attempts": 0,
                        "status": DeliveryStatus.FAILED if disabled else DeliveryStatus.PENDING,
                        "next_attempt_at": None if disabled else event.received_at,
                        "last_error": target.disabled_reason, "created_at": event.received_at,
                        "updated_at": event.received_at,
                    })
            if rows:
                await conn.execute(insert(t.deliveries), rows)
            if self.postgres and any(r["status"] == DeliveryStatus.PENDING for r in rows):
                await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
        return new_flags

    @contextlib.asynccontextmanager
    async def _raw(self) -> AsyncIterator[Any]:
        """A pooled connection's asyncpg connection, outside any SQLAlchemy transaction (autocommit).

        Anything but a server-side error (a lost connection, a cancelled statement) invalidates the
        connection, so the pool does not hand it out again.
        """
        import asyncpg

        async with self.store.engine.connect() as conn:
            raw: Any = (await conn.get_raw_connection()).driver_connection
            try:
                yield raw
            except BaseException as exc:
                if not isinstance(exc, asyncpg.PostgresError) or raw.is_closed():
                    await conn.invalidate()
                raise

    async def message_id_key(self) -> bytes:
        """The installation's ``webhook-id`` key (``core.message_ids``). The first process to ask makes it;
        every process reads the same one, and it never changes, so it is read once."""
        if self._message_id_key is None:
            s = t.instance_secrets
            async with self.store.read() as conn:
                value = (await conn.execute(select(s.c.value).where(s.c.name == MESSAGE_ID_KEY))).scalar()
            if value is None:
                dialect_insert = pg_insert if self.postgres else sqlite_insert
                async with self.store.write() as conn:  # two first processes at once: one key wins
                    await conn.execute(dialect_insert(s).values(
                        name=MESSAGE_ID_KEY, value=new_message_id_key(), created_at=time.time(),
                    ).on_conflict_do_nothing(index_elements=["name"]))
                    value = (await conn.execute(select(s.c.value).where(s.c.name == MESSAGE_ID_KEY))).scalar_one()
            self._message_id_key = bytes.fromhex(value)
        return self._message_id_key

    # ------------------------------------------------------------------ claim
    async def claim(self, owner: str, limit: int, lease_seconds: float,
                    exclude_webhooks: Sequence[int] = (), head: int | None = None) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries (new, retry-due, or with an expired lease) to ``owner``.

        ``exclude_webhooks`` skips those webhooks' rows. With ``head``, only the first ``head`` due rows
        are looked at, so that the skipping costs a bounded scan whatever the size of the backlog.
        """
        now = time.time()
        lease = now + lease_seconds
        excl = list(exclude_webhooks)
        windowed = head is not None and bool(excl)
        if self.postgres:
            async with self._raw() as raw:
                if windowed:
                    rows = await raw.fetch(PG_CLAIM_HEAD, now, lease, owner, limit, excl, head)
                else:
                    rows = await raw.fetch(PG_CLAIM, now, lease, owner, limit, excl)
            return [_claimed_record(row) for row in rows]
        # SQLite: the driver's own calls inside the store's BEGIN IMMEDIATE transaction (one thread hop each,
        # no SQLAlchemy compilation or result processing on the hot path).
        due_rows = "FROM deliveries WHERE status IN ('pending', 'delivering') AND next_attempt_at <= ? "
        skip = f"webhook_id NOT IN ({','.join('?' * len(excl))}) " if excl else ""
        if windowed:
            due = (f"SELECT id FROM (SELECT id, webhook_id, next_attempt_at {due_rows}ORDER BY next_attempt_at "
                   f"LIMIT ?) WHERE {skip}ORDER BY next_attempt_at LIMIT ?")
            window: tuple[Any, ...] = (now, head, *excl)
        else:
            due = f"SELECT id {due_rows}" + (f"AND {skip}" if skip else "") + "ORDER BY next_attempt_at LIMIT ?"
            window = (now, *excl)
        claim = ("UPDATE deliveries SET status = 'delivering', lease_owner = ?, lease_expires_at = ?, "
                 f"next_attempt_at = ?, updated_at = ? WHERE id IN ({due}) RETURNING id")
        async with self.store.write() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            params = (owner, lease, lease, now, *window, limit)
            ids = [row[0] for row in await driver.execute_fetchall(claim, params)]
            if not ids:
                return []
            load = f"SELECT {_claim_columns()} FROM deliveries c {_JOINS} WHERE c.id IN ({','.join('?' * len(ids))})"
            return [_claimed_record(row) for row in await driver.execute_fetchall(load, ids)]

    # ------------------------------------------------------------------ results
    async def record(self, owner: str, outcomes: Sequence[Outcome], releases: Sequence[int] = (),
                     disable_after: float | None = None) -> None:
        """Write a batch of results (and hand back ``releases`` unsent) in one transaction."""
        if not outcomes and not releases:
            return
        now = time.time()
        if self.postgres and not releases and not any(o.endpoint_failure or o.disable_reason for o in outcomes):
            await self._record_pg(owner, outcomes, now)  # the common case: one statement
            return
        d = t.deliveries
        attempt_rows = [o.attempt for o in outcomes if o.attempt is not None]
        async with self.store.write() as conn:
            if not self.postgres:  # SQLite: the driver's executemany inside the same transaction
                driver: Any = (await conn.get_raw_connection()).driver_connection
                if attempt_rows:
                    await driver.executemany(SQLITE_INSERT_ATTEMPT, [
                        (a["delivery_id"], a["number"], a["started_at"], a["duration_ms"], a["status_code"],
                         a["response_excerpt"], a["error"], a["request_headers"]) for a in attempt_rows])
                if outcomes:
                    await driver.executemany(SQLITE_UPDATE_DELIVERY, [
                        (o.status, o.attempts, o.next_attempt_at, o.last_status_code, o.last_error, now,
                         o.delivery_id, owner) for o in outcomes])
            elif attempt_rows:
                await conn.execute(insert(t.attempts), attempt_rows)
            if outcomes and self.postgres:
                stmt = (
                    update(d)
                    .where(d.c.id == bindparam("b_id"), d.c.lease_owner == bindparam("b_owner"))
                    .values(status=bindparam("b_status"), attempts=bindparam("b_attempts"),
                            next_attempt_at=bindparam("b_next"), lease_owner=None, lease_expires_at=None,
                            last_status_code=bindparam("b_code"), last_error=bindparam("b_error"),
                            updated_at=bindparam("b_now"))
                )
                await conn.execute(stmt, [
                    {"b_id": o.delivery_id, "b_owner": owner, "b_status": o.status, "b_attempts": o.attempts,
                     "b_next": o.next_attempt_at, "b_code": o.last_status_code, "b_error": o.last_error,
                     "b_now": now} for o in outcomes
                ])
            if releases:
                await conn.execute(
                    update(d).where(d.c.id.in_(list(releases)), d.c.lease_owner == owner,
                                    d.c.status == DeliveryStatus.DELIVERING)
                    .values(status=DeliveryStatus.PENDING, next_attempt_at=now, lease_owner=None, lease_expires_at=None,
                            updated_at=now)
                )
            await self._webhook_health(conn, outcomes, now, disable_after)

    async def _record_pg(self, owner: str, outcomes: Sequence[Outcome], now: float) -> None:
        attempts = [o.attempt for o in outcomes if o.attempt is not None]
        succeeded = sorted({o.webhook_id for o in outcomes if o.endpoint_success})
        async with self._raw() as raw:
            await raw.fetchval(
                PG_RECORD, now, owner,
                [o.delivery_id for o in outcomes], [o.status for o in outcomes], [o.attempts for o in outcomes],
                [o.next_attempt_at for o in outcomes], [o.last_status_code for o in outcomes],
                [o.last_error for o in outcomes],
                [a["delivery_id"] for a in attempts], [a["number"] for a in attempts],
                [a["started_at"] for a in attempts], [a["duration_ms"] for a in attempts],
                [a["status_code"] for a in attempts], [a["response_excerpt"] for a in attempts],
                [a["error"] for a in attempts], [a["request_headers"] for a in attempts],
                succeeded,
            )

    async def _webhook_health(self, conn: AsyncConnection, outcomes: Sequence[Outcome], now: float,
                              disable_after: float | None) -> None:
        w = t.webhooks.c
        succeeded = {o.webhook_id for o in outcomes if o.endpoint_success}
        failing = {o.webhook_id for o in outcomes if o.endpoint_failure} - succeeded
        if succeeded:
            await conn.execute(update(t.webhooks).where(w.id.in_(sorted(succeeded)), w.failing_since.is_not(None))
                               .values(failing_since=None))
        if failing:
            ids = sorted(failing)
            await conn.execute(update(t.webhooks).where(w.id.in_(ids), w.failing_since.is_(None))
                               .values(failing_since=now))
            if disable_after is not None:
                rule = auto_disable(now, disable_after)
                await conn.execute(
                    update(t.webhooks)
                    .where(w.id.in_(ids), w.disabled_at.is_(None), w.failing_since <= rule.cutoff)
                    .values(disabled_at=now, disabled_reason=rule.reason, modified_at=now)
                )
        for o in outcomes:
            if o.disable_reason:
                await conn.execute(update(t.webhooks).where(w.id == o.webhook_id, w.disabled_at.is_(None))
                                   .values(disabled_at=now, disabled_reason=o.disable_reason, modified_at=now))

    async def release_owned(self, owner: str) -> int:
        """Hand every row this owner still holds back to the queue (graceful shutdown)."""
        now = time.time()
        d = t.deliveries
        async with self.store.write() as conn:
            result = await conn.execute(
                update(d).where(d.c.lease_owner == owner, d.c.status == DeliveryStatus.DELIVERING)
                .values(status=DeliveryStatus.PENDING, next_attempt_at=now, lease_owner=None, lease_expires_at=None,
                        updated_at=now)
            )
        return int(result.rowcount or 0)

    # ------------------------------------------------------------------ maintenance
    async def purge(self, cutoff: float, batch: int = 1000) -> int:
        """Delete one batch of finished deliveries (with their attempts) created before ``cutoff``, then
        events older than ``cutoff`` that no delivery refers to. Returns how many rows went."""
        d = t.deliveries
        async with self.store.write() as conn:
            ids = [row.id for row in await conn.execute(
                select(d.c.id).where(d.c.created_at < cutoff, d.c.status.in_(FINISHED)).limit(batch))]
            if ids:
                await conn.execute(delete(t.attempts).where(t.attempts.c.delivery_id.in_(ids)))
                await conn.execute(delete(d).where(d.c.id.in_(ids)))
            e = t.events
            orphans = (select(e.c.id).where(e.c.received_at < cutoff,
                                            ~select(d.c.id).where(d.c.event_pk == e.c.id).exists())
                       .limit(batch).scalar_subquery())
            result = await conn.execute(delete(e).where(e.c.id.in_(orphans)))
        return len(ids) + int(result.rowcount or 0)

    async def queue_stats(self) -> tuple[int, float | None]:
        """(due deliveries, the oldest due time) — for /metrics."""
        d = t.deliveries
        now = time.time()
        async with self.store.read() as conn:
            row = (await conn.execute(
                select(func.count(), func.min(d.c.next_attempt_at))
                .where(IN_QUEUE, d.c.next_attempt_at <= now))).one()
        return int(row[0]), row[1]

    # ------------------------------------------------------------------ native API reads and actions
    async def list_events(self, account_id: int, domain_id: int | None, event_type: str | None,
                          event_id: str | None, before: int | None, limit: int) -> list[dict[str, Any]]:
        e, dm = t.events, t.domains
        query = (select(e.c.id, e.c.event_id, e.c.event_type, e.c.occurred_at, e.c.received_at, e.c.payload,
                        dm.c.name.label("domain"))
                 .join(dm, dm.c.id == e.c.domain_id)
                 .where(e.c.account_id == account_id).order_by(e.c.id.desc()).limit(limit))
        if domain_id is not None:
            query = query.where(e.c.domain_id == domain_id)
        if event_type is not None:
            query = query.where(e.c.event_type == event_type)
        if event_id is not None:
            query = query.where(e.c.event_id == event_id)
        if before is not None:
            query = query.where(e.c.id < before)
        async with self.store.read() as conn:
            return [dict(row._mapping) for row in await conn.execute(query)]

    def _delivery_query(self, account_id: int) -> Any:
        d, e, w, dm = t.deliveries, t.events, t.webhooks, t.domains
        return (
            select(d.c.id, d.c.status, d.c.attempts, d.c.next_attempt_at, d.c.last_status_code, d.c.last_error,
                   d.c.created_at, d.c.updated_at, e.c.event_id, e.c.event_type, dm.c.name.label("domain"),
                   w.c.guid.label("webhook"), w.c.url, w.c.payload_format)
            .join(e, e.c.id == d.c.event_pk)
            .join(w, w.c.id == d.c.webhook_id)
            .join(dm, dm.c.id == d.c.domain_id)
            .where(d.c.account_id == account_id)
        )

    async def list_deliveries(self, account_id: int, *, domain_id: int | None = None, event_id: str | None = None,
                              status: str | None = None, webhook_guid: str | None = None,
                              before: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        d = t.deliveries
        query = self._delivery_query(account_id).order_by(d.c.id.desc()).limit(limit)
        if domain_id is not None:
            query = query.where(d.c.domain_id == domain_id)
        if event_id is not None:
            query = query.where(t.events.c.event_id == event_id)
        if status is not None:
            query = query.where(d.c.status == status)
        if webhook_guid is not None:
            query = query.where(t.webhooks.c.guid == webhook_guid)
        if before is not None:
            query = query.where(d.c.id < before)
        async with self.store.read() as conn:
            return [dict(row._mapping) for row in await conn.execute(query)]

    async def get_delivery(self, account_id: int, delivery_id: int
                           ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        a = t.attempts
        async with self.store.read() as conn:
            row = (await conn.execute(self._delivery_query(account_id).where(t.deliveries.c.id == delivery_id))).first()
            if row is None:
                return None
            attempts = [
                {"number": r.number, "started_at": r.started_at, "duration_ms": r.duration_ms,
                 "status_code": r.status_code, "response_excerpt": r.response_excerpt, "error": r.error}
                for r in await conn.execute(
                    select(a.c.number, a.c.started_at, a.c.duration_ms, a.c.status_code, a.c.response_excerpt,
                           a.c.error).where(a.c.delivery_id == delivery_id).order_by(a.c.number, a.c.id))
            ]
        return dict(row._mapping), attempts

    async def requeue(self, account_id: int, delivery_id: int) -> str | None:
        """Queue one delivery for an attempt now. Returns its previous status, or ``None`` if not found
        (another account's row is not found). A row in flight is left alone."""
        d = t.deliveries
        now = time.time()
        async with self.store.write() as conn:
            row = (await conn.execute(select(d.c.status).where(d.c.id == delivery_id, d.c.account_id == account_id))
                   ).first()
            if row is None:
                return None
            if row.status != DeliveryStatus.DELIVERING:
                await conn.execute(update(d).where(d.c.id == delivery_id).values(
                    status=DeliveryStatus.PENDING, next_attempt_at=now, lease_owner=None, lease_expires_at=None,
                    updated_at=now))
                if self.postgres:
                    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
        return str(row.status)

    async def recover(self, account_id: int, domain_id: int, since: float) -> int:
        """Re-queue the domain's failed deliveries created since ``since``."""
        d = t.deliveries
        now = time.time()
        async with self.store.write() as conn:
            result = await conn.execute(
                update(d).where(d.c.account_id == account_id, d.c.domain_id == domain_id,
                                d.c.status == DeliveryStatus.FAILED,
                                d.c.created_at >= since)
                .values(status=DeliveryStatus.PENDING, next_attempt_at=now, updated_at=now))
            if self.postgres and result.rowcount:
                await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
        return int(result.rowcount or 0)

    async def enable_webhook(self, account_id: int, guid: str) -> bool:
        w = t.webhooks.c
        async with self.store.write() as conn:
            result = await conn.execute(
                update(t.webhooks).where(w.account_id == account_id, w.guid == guid, w.deleted_at.is_(None))
                .values(disabled_at=None, disabled_reason=None, failing_since=None, modified_at=time.time()))
        return bool(result.rowcount)

    @staticmethod
    async def _webhooks(conn: AsyncConnection, account_ids: set[int], domain_ids: set[int],
                        event_types: set[str]) -> list[Webhook]:
        """Fan-out candidates: these accounts' rows for these domains, and their account-level rows."""
        w = t.webhooks.c
        query = select(t.webhooks).where(
            w.account_id.in_(sorted(account_ids)), w.deleted_at.is_(None), w.event_type.in_(sorted(event_types)),
            or_(w.domain_id.is_(None), w.domain_id.in_(sorted(domain_ids))),
        )
        return [Webhook(**row._mapping) for row in await conn.execute(query)]
