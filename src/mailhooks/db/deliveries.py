"""Deliveries and events as their owners see them: the reads behind the native API (and the delivery
select the dashboard shares), and the actions both offer — a manual retry, a recovery, re-enabling a
subscription.

Every query is scoped by account id, so another account's rows are indistinguishable from missing ones.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import ColumnElement, Select, select, update

from mailhooks.core.audit import AuditAction
from mailhooks.core.deliveries import DeliveryStatus
from mailhooks.db import audit
from mailhooks.db import schema as t
from mailhooks.db.audit import webhook_target
from mailhooks.db.database import Database


def delivery_select(account_id: int, *extra: ColumnElement[Any]) -> Select[Any]:
    """The account's deliveries, each with its event, domain name and webhook (plus ``extra`` columns)."""
    d, e, w, dm = t.deliveries, t.events, t.webhooks, t.domains
    return (
        select(d.c.id, d.c.status, d.c.attempts, d.c.next_attempt_at, d.c.last_status_code, d.c.last_error,
               d.c.created_at, d.c.updated_at, e.c.event_id, e.c.event_type, dm.c.name.label("domain"),
               w.c.guid.label("webhook"), w.c.url, w.c.payload_format, *extra)
        .join(e, e.c.id == d.c.event_pk)
        .join(w, w.c.id == d.c.webhook_id)
        .join(dm, dm.c.id == d.c.domain_id)
        .where(d.c.account_id == account_id)
    )


class Deliveries:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ reads
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
        async with self.db.read() as conn:
            return [dict(row._mapping) for row in await conn.execute(query)]

    async def list_deliveries(self, account_id: int, *, domain_id: int | None = None, event_id: str | None = None,
                              status: str | None = None, webhook_guid: str | None = None,
                              before: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        d = t.deliveries
        query = delivery_select(account_id).order_by(d.c.id.desc()).limit(limit)
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
        async with self.db.read() as conn:
            return [dict(row._mapping) for row in await conn.execute(query)]

    async def get_delivery(self, account_id: int, delivery_id: int
                           ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """One delivery and its attempts, oldest first; ``None`` if this account has no such delivery."""
        a = t.attempts
        async with self.db.read() as conn:
            row = (await conn.execute(delivery_select(account_id).where(t.deliveries.c.id == delivery_id))).first()
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

    # ------------------------------------------------------------------ actions
    async def requeue(self, account_id: int, delivery_id: int) -> DeliveryStatus | None:
        """Queue one delivery for an attempt now. Returns its previous status, or ``None`` if not found
        (another account's row is not found). A row in flight is left alone."""
        d = t.deliveries
        now = time.time()
        async with self.db.write() as conn:
            row = (await conn.execute(select(d.c.status).where(d.c.id == delivery_id, d.c.account_id == account_id))
                   ).first()
            if row is None:
                return None
            if row.status != DeliveryStatus.DELIVERING:
                await conn.execute(update(d).where(d.c.id == delivery_id).values(
                    status=DeliveryStatus.PENDING, next_attempt_at=now, lease_owner=None, lease_expires_at=None,
                    updated_at=now))
                await self.db.notify(conn)
        return DeliveryStatus(row.status)

    async def recover(self, account_id: int, domain_id: int, since: float) -> int:
        """Re-queue the domain's failed deliveries created since ``since``."""
        d = t.deliveries
        now = time.time()
        async with self.db.write() as conn:
            result = await conn.execute(
                update(d).where(d.c.account_id == account_id, d.c.domain_id == domain_id,
                                d.c.status == DeliveryStatus.FAILED, d.c.created_at >= since)
                .values(status=DeliveryStatus.PENDING, next_attempt_at=now, updated_at=now))
            if result.rowcount:
                await self.db.notify(conn)
        return int(result.rowcount or 0)

    async def enable_webhook(self, account_id: int, guid: str) -> bool:
        """Re-enable a disabled subscription (and forget its failing streak); ``False`` if not found."""
        w = t.webhooks.c
        async with self.db.write() as conn:
            result = await conn.execute(
                update(t.webhooks).where(w.account_id == account_id, w.guid == guid, w.deleted_at.is_(None))
                .values(disabled_at=None, disabled_reason=None, failing_since=None, modified_at=time.time())
                .returning(w.guid, w.event_type, w.url))
            enabled = result.first()
            if enabled is not None:
                await audit.record_in(conn, account_id, AuditAction.SUBSCRIPTION_ENABLED, webhook_target(*enabled))
        return enabled is not None
