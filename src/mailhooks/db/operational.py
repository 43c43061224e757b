"""Operational events as the delivery queue notes them: inside the transaction of the state change
(``core.operational``), for the rows that change actually touched. Only transitions pay for this; the
common success path writes nothing here (on PostgreSQL its one-statement write notes recoveries itself)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailhooks.core.deliveries import DeliveryStatus, Outcome
from mailhooks.core.operational import OPERATIONAL_FORMAT, OperationalKind, Transition
from mailhooks.db import schema as t


def webhook_transitions(kind: OperationalKind, rows: Iterable[Any], outcomes: Sequence[Outcome] = (),
                        detail: str | None = None) -> list[Transition]:
    """Transitions of the webhook rows an UPDATE … RETURNING (id, account_id, payload_format) changed, each
    with one of the batch's deliveries of that webhook (what caused it). Operational webhooks are left
    out: they never report about themselves."""
    cause = {o.webhook_id: o.delivery_id for o in outcomes}
    return [Transition(kind, row.account_id, row.id, cause.get(row.id), detail)
            for row in rows if row.payload_format != OPERATIONAL_FORMAT]


async def note_transitions(conn: AsyncConnection, transitions: Sequence[Transition], now: float) -> None:
    if transitions:
        await conn.execute(insert(t.operational_events), [
            {"account_id": tr.account_id, "kind": tr.kind.value, "webhook_id": tr.webhook_id,
             "delivery_id": tr.delivery_id, "detail": tr.detail, "occurred_at": now} for tr in transitions])


async def note_exhausted(conn: AsyncConnection, owner: str, outcomes: Sequence[Outcome], now: float,
                         lock: bool) -> None:
    """``delivery.exhausted`` for each outcome that fails its delivery after an attempt, among the rows
    ``owner`` still holds: called before the batch's delivery updates, in their transaction (``lock``:
    take the rows' locks, PostgreSQL), so a batch written twice notes each delivery once."""
    ids = [o.delivery_id for o in outcomes if o.status == DeliveryStatus.FAILED and o.attempt is not None]
    if not ids:
        return
    d, w = t.deliveries, t.webhooks
    query = (select(d.c.id, d.c.account_id, d.c.webhook_id).join(w, w.c.id == d.c.webhook_id)
             .where(d.c.id.in_(ids), d.c.lease_owner == owner, w.c.payload_format != OPERATIONAL_FORMAT))
    if lock:
        query = query.with_for_update(of=d)
    errors = {o.delivery_id: o.last_error for o in outcomes}
    await note_transitions(conn, [
        Transition(OperationalKind.DELIVERY_EXHAUSTED, row.account_id, row.webhook_id, row.id, errors.get(row.id))
        for row in await conn.execute(query)], now)
