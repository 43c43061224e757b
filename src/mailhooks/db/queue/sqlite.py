"""The delivery queue on SQLite.

Hot paths go through the driver's own calls in a ``BEGIN IMMEDIATE`` transaction on the database's own
hot connection (``Database.hot_write``: one thread hop per call, no SQLAlchemy pool, compilation or result
processing):

- claim: a single-statement ``UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING`` and one joined SELECT
  in the same transaction;
- results without failures or releases (the common case): the attempts inserted and the deliveries
  updated with ``executemany``, and the answered webhooks' failing streaks cleared (a recovery noted as
  an operational event), in one such transaction; other batches take the general path through
  SQLAlchemy (``Database.write``), with the webhooks' health rules of ``SqlQueue``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from mailhooks.core.deliveries import Claimed, DeliveryStatus, Outcome
from mailhooks.core.operational import OperationalKind
from mailhooks.core.outcomes import endpoint_health
from mailhooks.db import schema as t
from mailhooks.db.operational import note_exhausted, webhook_transitions
from mailhooks.db.queue.common import CLAIM_COLUMNS, CLAIM_JOINS, SqlQueue, claimed, plain_batch

_DUE_ROWS = f"FROM deliveries WHERE {t.IN_QUEUE_SQL} AND next_attempt_at <= ? "
INSERT_ATTEMPT = ("INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code, "
                  "response_excerpt, error, request_headers) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
UPDATE_DELIVERY = ("UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, lease_owner = NULL, "
                   "lease_expires_at = NULL, last_status_code = ?, last_error = ?, updated_at = ? "
                   "WHERE id = ? AND lease_owner = ?")
INSERT_OPERATIONAL = ("INSERT INTO operational_events (account_id, kind, webhook_id, delivery_id, detail, occurred_at) "
                      "VALUES (?, ?, ?, ?, ?, ?)")


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
        params = (owner, lease, lease, now, *window, limit)
        if not self.db.has_hot_writes:
            async with self.db.write() as conn:
                return await self._claim(await self.db.driver(conn), claim, params)
        async with self.db.hot_write() as driver:
            return await self._claim(driver, claim, params)

    @staticmethod
    async def _claim(driver: Any, claim: str, params: tuple[Any, ...]) -> list[Claimed]:
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
        if self.db.has_hot_writes and plain_batch(outcomes, releases):
            await self._record_hot(owner, outcomes, now)  # the common case
            return
        async with self.db.write() as conn:
            driver = await self.db.driver(conn)
            await self._insert_attempts(driver, outcomes)
            if outcomes:
                await note_exhausted(conn, owner, outcomes, now, lock=False)  # before the updates end the leases
            await self._update_deliveries(driver, owner, outcomes, now)
            await self._release(conn, owner, releases, now)
            await self._webhook_health(conn, outcomes, now, disable_after)

    @staticmethod
    async def _insert_attempts(driver: Any, outcomes: Sequence[Outcome]) -> None:
        attempt_rows = [o.attempt for o in outcomes if o.attempt is not None]
        if attempt_rows:
            await driver.executemany(INSERT_ATTEMPT, [
                (a["delivery_id"], a["number"], a["started_at"], a["duration_ms"], a["status_code"],
                 a["response_excerpt"], a["error"], a["request_headers"]) for a in attempt_rows])

    @staticmethod
    async def _update_deliveries(driver: Any, owner: str, outcomes: Sequence[Outcome], now: float) -> None:
        """The deliveries' new states, for the rows ``owner`` still holds."""
        if outcomes:
            await driver.executemany(UPDATE_DELIVERY, [
                (o.status, o.attempts, o.next_attempt_at, o.last_status_code, o.last_error, now,
                 o.delivery_id, owner) for o in outcomes])

    async def _record_hot(self, owner: str, outcomes: Sequence[Outcome], now: float) -> None:
        """A batch without failures or releases: nothing is exhausted and no streak starts, so the only
        health change is the answered webhooks' streaks ending (``webhook.recovered``, as on PostgreSQL)."""
        answered, _ = endpoint_health(outcomes)
        async with self.db.hot_write() as driver:
            await self._insert_attempts(driver, outcomes)  # a plain batch: no exhaustion to note
            await self._update_deliveries(driver, owner, outcomes, now)
            recovered: list[_Row] = []
            if answered:
                recovered = [_Row(*row) for row in await driver.execute_fetchall(
                    f"UPDATE webhooks SET failing_since = NULL WHERE id IN ({','.join('?' * len(answered))}) "
                    "AND failing_since IS NOT NULL RETURNING id, account_id, payload_format", answered)]
            transitions = webhook_transitions(OperationalKind.WEBHOOK_RECOVERED, recovered, outcomes)
            if transitions:
                await driver.executemany(INSERT_OPERATIONAL, [
                    (tr.account_id, tr.kind.value, tr.webhook_id, tr.delivery_id, tr.detail, now)
                    for tr in transitions])
        if recovered:
            self.db.config_changed()


class _Row(NamedTuple):
    """A webhook row an UPDATE … RETURNING changed, by name (``webhook_transitions`` reads it so)."""

    id: int
    account_id: int
    payload_format: str
