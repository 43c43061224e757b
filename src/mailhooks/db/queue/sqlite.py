"""The delivery queue on SQLite.

Hot paths go through the driver's own calls inside the database's ``BEGIN IMMEDIATE`` write transaction
(one thread hop each, no SQLAlchemy compilation or result processing):

- claim: a single-statement ``UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING`` and one joined SELECT
  in the same transaction;
- results: one transaction inserting the attempts and updating the deliveries with ``executemany``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from mailhooks.core.deliveries import Claimed, DeliveryStatus, Outcome
from mailhooks.db import schema as t
from mailhooks.db.operational import note_exhausted
from mailhooks.db.queue.common import CLAIM_COLUMNS, CLAIM_JOINS, SqlQueue, claimed

_DUE_ROWS = f"FROM deliveries WHERE {t.IN_QUEUE_SQL} AND next_attempt_at <= ? "
INSERT_ATTEMPT = ("INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code, "
                  "response_excerpt, error, request_headers) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
UPDATE_DELIVERY = ("UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, lease_owner = NULL, "
                   "lease_expires_at = NULL, last_status_code = ?, last_error = ?, updated_at = ? "
                   "WHERE id = ? AND lease_owner = ?")


class SqliteQueue(SqlQueue):
    async def claim(self, owner: str, limit: int, lease_seconds: float,
                    exclude_webhooks: Sequence[int] = (), head: int | None = None) -> list[Claimed]:
        now = time.time()
        lease = now + lease_seconds
        excl = list(exclude_webhooks)
        skip = f"webhook_id NOT IN ({','.join('?' * len(excl))}) " if excl else ""
        if head is not None and excl:
            due = (f"SELECT id FROM (SELECT id, webhook_id, next_attempt_at {_DUE_ROWS}ORDER BY next_attempt_at "
                   f"LIMIT ?) WHERE {skip}ORDER BY next_attempt_at LIMIT ?")
            window: tuple[Any, ...] = (now, head, *excl)
        else:
            due = f"SELECT id {_DUE_ROWS}" + (f"AND {skip}" if skip else "") + "ORDER BY next_attempt_at LIMIT ?"
            window = (now, *excl)
        claim = (f"UPDATE deliveries SET status = '{DeliveryStatus.DELIVERING}', lease_owner = ?, "
                 f"lease_expires_at = ?, next_attempt_at = ?, updated_at = ? WHERE id IN ({due}) RETURNING id")
        async with self.db.write() as conn:
            driver = await self.db.driver(conn)
            params = (owner, lease, lease, now, *window, limit)
            ids = [row[0] for row in await driver.execute_fetchall(claim, params)]
            if not ids:
                return []
            load = f"SELECT {CLAIM_COLUMNS} FROM deliveries c {CLAIM_JOINS} WHERE c.id IN ({','.join('?' * len(ids))})"
            return [claimed(row) for row in await driver.execute_fetchall(load, ids)]

    async def record(self, owner: str, outcomes: Sequence[Outcome], releases: Sequence[int] = (),
                     disable_after: float | None = None) -> None:
        if not outcomes and not releases:
            return
        now = time.time()
        attempt_rows = [o.attempt for o in outcomes if o.attempt is not None]
        async with self.db.write() as conn:
            driver = await self.db.driver(conn)
            if attempt_rows:
                await driver.executemany(INSERT_ATTEMPT, [
                    (a["delivery_id"], a["number"], a["started_at"], a["duration_ms"], a["status_code"],
                     a["response_excerpt"], a["error"], a["request_headers"]) for a in attempt_rows])
            if outcomes:
                await note_exhausted(conn, owner, outcomes, now, lock=False)
                await driver.executemany(UPDATE_DELIVERY, [
                    (o.status, o.attempts, o.next_attempt_at, o.last_status_code, o.last_error, now,
                     o.delivery_id, owner) for o in outcomes])
            await self._release(conn, owner, releases, now)
            await self._webhook_health(conn, outcomes, now, disable_after)
