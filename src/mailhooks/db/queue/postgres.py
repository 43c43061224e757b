"""The delivery queue on PostgreSQL.

- claim: one statement (``FOR UPDATE SKIP LOCKED`` in a CTE, ``UPDATE … RETURNING``, joined to the event
  payload, webhook, signing key and domain secret) as a prepared asyncpg statement in its own implicit
  transaction: one round trip;
- results: a batch without failures or releases is one statement (attempts inserted and deliveries
  updated from ``unnest`` arrays in data-modifying CTEs, atomic, one round trip); other batches use one
  transaction inserting the attempts and updating the deliveries with ``executemany``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import bindparam, insert, update

from mailhooks.core.deliveries import Claimed, DeliveryStatus, Outcome
from mailhooks.core.operational import OPERATIONAL_FORMAT, OperationalKind
from mailhooks.core.outcomes import endpoint_health
from mailhooks.db import schema as t
from mailhooks.db.operational import note_exhausted
from mailhooks.db.queue.common import CLAIM_COLUMNS, CLAIM_JOINS, SqlQueue, claimed, plain_batch

# Each statement below is one prepared asyncpg statement run on its own (its own implicit transaction),
# one round trip, instead of BEGIN + statement(s) + COMMIT through SQLAlchemy.
_DUE = f"{t.IN_QUEUE_SQL} AND next_attempt_at <= $1"
_CLAIM_REST = (
    f"c AS (UPDATE deliveries d SET status = '{DeliveryStatus.DELIVERING}', lease_owner = $3, lease_expires_at = $2, "
    "next_attempt_at = $2, updated_at = $1 FROM due WHERE d.id = due.id "
    "RETURNING d.id, d.event_pk, d.webhook_id, d.attempts, d.lease_expires_at) "
    f"SELECT {CLAIM_COLUMNS} FROM c {CLAIM_JOINS}"
)
CLAIM = (
    f"WITH due AS (SELECT id FROM deliveries WHERE {_DUE} "
    "AND webhook_id <> ALL($5::bigint[]) ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED), "
    + _CLAIM_REST
)
# The same, looking only at the first $6 due rows: skipping saturated webhooks costs a bounded scan, not
# one over the whole backlog (a million rows for one slow receiver made every claim a full index scan).
CLAIM_HEAD = (
    f"WITH due AS (SELECT id FROM deliveries WHERE {_DUE} AND webhook_id <> ALL($5::bigint[]) "
    f"AND id IN (SELECT id FROM deliveries WHERE {_DUE} ORDER BY next_attempt_at LIMIT $6) "
    "ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED), "
    + _CLAIM_REST
)
# Attempts, delivery states (only rows ``$2`` still holds) and the webhooks' cleared failing streaks, as
# one statement: atomic like the transaction it replaces. Data-modifying CTEs run whether read or not.
RECORD = (
    "WITH o AS (SELECT * FROM unnest($3::bigint[], $4::varchar[], $5::int[], $6::float8[], $7::int[], $8::text[]) "
    "AS o(id, status, attempts, next_at, code, error)), "
    "u AS (UPDATE deliveries d SET status = o.status, attempts = o.attempts, next_attempt_at = o.next_at, "
    "lease_owner = NULL, lease_expires_at = NULL, last_status_code = o.code, last_error = o.error, updated_at = $1 "
    "FROM o WHERE d.id = o.id AND d.lease_owner = $2 RETURNING d.id), "
    "a AS (INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code, response_excerpt, "
    "error, request_headers) SELECT * FROM unnest($9::bigint[], $10::int[], $11::float8[], $12::float8[], "
    "$13::int[], $14::text[], $15::text[], $16::text[])), "
    "h AS (UPDATE webhooks SET failing_since = NULL WHERE id = ANY($17::bigint[]) AND failing_since IS NOT NULL "
    "RETURNING id, account_id, payload_format), "
    # A streak that ends here is noted as ``webhook.recovered`` in the same statement (db.operational does it
    # for the other paths): nothing is inserted unless ``h`` changed a row.
    f"r AS (INSERT INTO operational_events (account_id, kind, webhook_id, occurred_at) "
    f"SELECT account_id, '{OperationalKind.WEBHOOK_RECOVERED.value}', id, $1 FROM h "
    f"WHERE payload_format <> '{OPERATIONAL_FORMAT}') "
    "SELECT count(*) FROM u"
)
# The general case's delivery update (executemany), guarded by the lease owner like ``RECORD``.
_UPDATE_DELIVERY = (
    update(t.deliveries)
    .where(t.deliveries.c.id == bindparam("b_id"), t.deliveries.c.lease_owner == bindparam("b_owner"))
    .values(status=bindparam("b_status"), attempts=bindparam("b_attempts"),
            next_attempt_at=bindparam("b_next"), lease_owner=None, lease_expires_at=None,
            last_status_code=bindparam("b_code"), last_error=bindparam("b_error"),
            updated_at=bindparam("b_now"))
)


class PostgresQueue(SqlQueue):
    async def claim(self, owner: str, limit: int, lease_seconds: float,
                    exclude_webhooks: Sequence[int] = (), head: int | None = None) -> list[Claimed]:
        now = time.time()
        lease = now + lease_seconds
        excl = list(exclude_webhooks)
        async with self.db.raw() as raw:
            if head is not None and excl:
                rows = await raw.fetch(CLAIM_HEAD, now, lease, owner, limit, excl, head)
            else:
                rows = await raw.fetch(CLAIM, now, lease, owner, limit, excl)
        return [claimed(row) for row in rows]

    async def record(self, owner: str, outcomes: Sequence[Outcome], releases: Sequence[int] = (),
                     disable_after: float | None = None) -> None:
        if not outcomes and not releases:
            return
        now = time.time()
        if plain_batch(outcomes, releases):
            await self._record_in_one_statement(owner, outcomes, now)  # the common case
            return
        attempt_rows = [o.attempt for o in outcomes if o.attempt is not None]
        async with self.db.write() as conn:
            if attempt_rows:
                await conn.execute(insert(t.attempts), attempt_rows)
            if outcomes:
                await note_exhausted(conn, owner, outcomes, now, lock=True)
                await conn.execute(_UPDATE_DELIVERY, [
                    {"b_id": o.delivery_id, "b_owner": owner, "b_status": o.status, "b_attempts": o.attempts,
                     "b_next": o.next_attempt_at, "b_code": o.last_status_code, "b_error": o.last_error,
                     "b_now": now} for o in outcomes
                ])
            await self._release(conn, owner, releases, now)
            await self._webhook_health(conn, outcomes, now, disable_after)

    async def _record_in_one_statement(self, owner: str, outcomes: Sequence[Outcome], now: float) -> None:
        attempts = [o.attempt for o in outcomes if o.attempt is not None]
        answered, _ = endpoint_health(outcomes)  # this path has no failures: see record()
        async with self.db.raw() as raw:
            await raw.fetchval(
                RECORD, now, owner,
                [o.delivery_id for o in outcomes], [o.status for o in outcomes], [o.attempts for o in outcomes],
                [o.next_attempt_at for o in outcomes], [o.last_status_code for o in outcomes],
                [o.last_error for o in outcomes],
                [a["delivery_id"] for a in attempts], [a["number"] for a in attempts],
                [a["started_at"] for a in attempts], [a["duration_ms"] for a in attempts],
                [a["status_code"] for a in attempts], [a["response_excerpt"] for a in attempts],
                [a["error"] for a in attempts], [a["request_headers"] for a in attempts],
                answered,
            )
