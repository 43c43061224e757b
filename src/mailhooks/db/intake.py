"""Event intake in SQL: new events and one delivery row per target, in one transaction (the outbox),
with requests that arrive while a write is under way combined into the next one (group commit).

Per combined transaction: one batched ``INSERT … ON CONFLICT DO NOTHING RETURNING`` for the events
(idempotency), one read of the fan-out candidates, one batched INSERT for their deliveries, and on
PostgreSQL a ``pg_notify`` that wakes the dispatchers.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailhooks import tracing
from mailhooks.core.deliveries import DeliveryStatus
from mailhooks.core.events import NewEvent, targets_for
from mailhooks.core.models import Webhook
from mailhooks.db import schema as t
from mailhooks.db.database import Database
from mailhooks.db.engine import is_unavailable
from mailhooks.db.store import webhook_from_row
from mailhooks.db.suppressions import suppressed_recipients, suppression_row, upsert

GROUP_COMMIT_MAX = 5000  # events per combined ingest transaction

_Waiting = tuple[Sequence[NewEvent], asyncio.Future[list[bool]]]  # events, and their caller's answer


class IntakeStore:
    """The storage side of ``core.events.Intake``; one per process, so that its requests share commits."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: deque[_Waiting] = deque()
        self._writer: asyncio.Task[None] | None = None

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
        self._queue.append((events, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued())
        return await asyncio.shield(future)

    async def _write_queued(self) -> None:
        while self._queue:
            queued: list[_Waiting] = []
            count = 0
            while self._queue and (not queued or count + len(self._queue[0][0]) <= GROUP_COMMIT_MAX):
                item = self._queue.popleft()
                queued.append(item)
                count += len(item[0])
            try:
                flags = await self._write_traced([e for item in queued for e in item[0]])
            except Exception as exc:
                if len(queued) > 1 and not is_unavailable(exc):
                    # Refused for its data (a row the database will not take): one request's fault must
                    # not fail the others that shared its transaction, of this tenant or another. Each
                    # is written alone, as it would have been without company.
                    await self._write_each(queued)
                else:  # the database cannot serve: every caller hears so (503), as each alone would
                    _fail(queued, exc)
                continue
            except BaseException as exc:  # cancelled (shutdown): no caller may wait for an answer forever
                _fail(queued, exc)
                raise
            start = 0
            for item_events, future in queued:
                if not future.done():
                    future.set_result(flags[start:start + len(item_events)])
                start += len(item_events)

    async def _write_each(self, queued: list[_Waiting]) -> None:
        for events, future in queued:
            try:
                flags = await self._write_traced(events)
            except Exception as exc:
                _fail([(events, future)], exc)
            except BaseException as exc:
                _fail(queued, exc)
                raise
            else:
                if not future.done():
                    future.set_result(flags)

    async def _write_traced(self, events: Sequence[NewEvent]) -> list[bool]:
        tracer = tracing.TRACER
        return await (self._write(events) if tracer is None else tracer.ingest_transaction(self._write, events))

    async def _write(self, events: Sequence[NewEvent]) -> list[bool]:
        inserted: dict[tuple[int, str], int] = {}
        # executemany of one cached statement: SQLAlchemy renders the batches itself ("insertmanyvalues"),
        # instead of compiling a fresh multi-row VALUES statement for every request.
        stmt = (
            self.db.insert(t.events)
            .on_conflict_do_nothing(index_elements=["domain_id", "event_id"])
            .returning(t.events.c.id, t.events.c.domain_id, t.events.c.event_id)
        )
        # config=False: events, deliveries and suppressions are nothing the read cache holds, so the
        # next request's key and domain are still answered from memory.
        async with self.db.write(config=False) as conn:
            suppressed = await suppressed_recipients(
                conn, [(e.domain_id, e.recipient) for e in events if e.recipient is not None])
            payloads = [marked_suppressed(e.payload) if (e.domain_id, e.recipient) in suppressed else e.payload
                        for e in events]
            params = [{"event_id": e.event_id, "account_id": e.account_id, "domain_id": e.domain_id,
                       "event_type": e.event_type, "occurred_at": e.occurred_at, "received_at": e.received_at,
                       "payload": payload, "traceparent": e.traceparent}
                      for e, payload in zip(events, payloads, strict=True)]
            for row in await conn.execute(stmt, params):
                inserted[(row.domain_id, row.event_id)] = row.id
            await upsert(self.db, conn, [
                suppression_row(e.account_id, e.domain_id, e.suppression) for e in events
                if e.suppression is not None and (e.domain_id, e.event_id) in inserted])
            hooks = await _candidates(conn, {e.account_id for e in events}, {e.domain_id for e in events},
                                      {e.event_type for e in events}) if inserted else []
            rows: list[dict[str, Any]] = []
            new_flags: list[bool] = []
            for event, payload in zip(events, payloads, strict=True):
                pk = inserted.pop((event.domain_id, event.event_id), None)
                new_flags.append(pk is not None)
                if pk is None:
                    continue
                for target in targets_for(event.event_type, event.account_id, event.domain_id, hooks, payload):
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
            if any(r["status"] == DeliveryStatus.PENDING for r in rows):
                await self.db.notify(conn)
        return new_flags


def _fail(queued: Sequence[_Waiting], exc: BaseException) -> None:
    for _, future in queued:
        if not future.done():
            future.set_exception(exc)


def marked_suppressed(payload: str) -> str:
    """The event data with ``"suppressed": true``: its recipient was on a list of the domain when the
    event arrived (rare, so the JSON is parsed only for these)."""
    data = json.loads(payload)
    data["suppressed"] = True
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


async def _candidates(conn: AsyncConnection, account_ids: set[int], domain_ids: set[int],
                      event_types: set[str]) -> list[Webhook]:
    """Fan-out candidates: these accounts' rows for these domains, and their account-level rows."""
    w = t.webhooks.c
    query = select(t.webhooks).where(
        w.account_id.in_(sorted(account_ids)), w.deleted_at.is_(None), w.event_type.in_(sorted(event_types)),
        or_(w.domain_id.is_(None), w.domain_id.in_(sorted(domain_ids))),
    )
    return [webhook_from_row(row) for row in await conn.execute(query)]
