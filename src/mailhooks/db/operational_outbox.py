"""Operational events after the queue noted them (``db.operational``): fanned out to the account's
operational webhooks as ordinary deliveries, and claimed for email by subscription, throttled.

Both steps take rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (several workers share the table) and
run in SQLite's single writer otherwise. A fan-out writes the event row, its deliveries and the mark on
the operational event in one transaction: each operational event becomes deliveries exactly once.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailhooks.core.deliveries import DeliveryStatus
from mailhooks.core.operational import (
    OPERATIONAL_FORMAT,
    EmailStatus,
    OperationalEvent,
    OperationalKind,
    mail_due_at,
    payload,
)
from mailhooks.core.outcomes import webhook_disabled_error
from mailhooks.db import schema as t
from mailhooks.db.database import Database

FAN_OUT_BATCH = 100
ALERT_CLAIM_LOCK = 0x6D686F7073  # PostgreSQL advisory lock key of the email claims ("mhops")
oe = t.operational_events


@dataclass(frozen=True, slots=True)
class Alert:
    """One email to send: one event, or a digest of one subscription's events."""

    address: str
    username: str
    events: list[OperationalEvent]

    @property
    def ids(self) -> list[int]:
        return [e.id for e in self.events]


class OperationalOutbox:
    def __init__(self, db: Database, email_enabled: bool) -> None:
        self.db = db
        self.email_enabled = email_enabled  # MAILHOOKS_SMTP_URL is set

    def _lock(self, query: Any) -> Any:
        return query.with_for_update(skip_locked=True, of=oe) if self.db.postgres else query

    async def has_work(self, now: float) -> bool:
        """Whether anything waits for a fan-out, or an email is due: one read on an index, so that an idle
        relay never takes the write lock (SQLite has one writer, shared with the result writes)."""
        async with self.db.read() as conn:
            if (await conn.execute(select(oe.c.id).where(oe.c.fanned_out_at.is_(None)).limit(1))).first():
                return True
            if not self.email_enabled:
                return False
            return (await conn.execute(select(oe.c.id).where(oe.c.email_status == EmailStatus.PENDING.value,
                                                             oe.c.email_due_at <= now).limit(1))).first() is not None

    # ------------------------------------------------------------------ fan-out
    async def fan_out(self, limit: int = FAN_OUT_BATCH) -> int:
        """Turn up to ``limit`` new operational events into deliveries; returns how many are due to send."""
        now = time.time()
        async with self.db.write() as conn:
            ids = [row.id for row in await conn.execute(
                self._lock(select(oe.c.id).where(oe.c.fanned_out_at.is_(None)).order_by(oe.c.id).limit(limit)))]
            if not ids:
                return 0
            described = await _describe(conn, ids)
            accounts = {row["account_id"] for row in described}
            w = t.webhooks.c
            hooks = list(await conn.execute(select(w.id, w.account_id, w.event_type, w.disabled_at, w.disabled_reason)
                                            .where(w.account_id.in_(sorted(accounts)), w.deleted_at.is_(None),
                                                   w.payload_format == OPERATIONAL_FORMAT)))
            alerted = {row.account_id for row in await conn.execute(
                select(t.account_alerts.c.account_id).where(t.account_alerts.c.account_id.in_(sorted(accounts))))}
            due, marks = 0, []
            for row in described:
                event: OperationalEvent = row["event"]
                targets = [h for h in hooks if h.account_id == row["account_id"] and h.event_type == event.kind]
                domain_id = row["domain_id"] or await _any_domain(conn, row["webhook_id"], row["account_id"])
                if targets and domain_id is not None:
                    due += await _deliver(conn, row["account_id"], domain_id, event, targets, now)
                email = EmailStatus.PENDING if self.email_enabled and row["account_id"] in alerted else EmailStatus.NONE
                marks.append({"b_id": event.id, "b_email": email.value})
            await conn.execute(update(oe).where(oe.c.id == bindparam("b_id"))
                               .values(fanned_out_at=now, email_status=bindparam("b_email"), email_due_at=now), marks)
            if due:
                await self.db.notify(conn)
        return due

    # ------------------------------------------------------------------ email
    async def claim_alerts(self, interval: float, retry_after: float, limit: int = 500) -> list[Alert]:
        """The emails due now, one per subscription: its pending events, unless it was mailed less than
        ``interval`` seconds ago (then they wait, and go out together when the interval is over). Claimed
        rows are not looked at again for ``retry_after`` seconds unless ``mailed`` marks them sent: an
        SMTP server that is down means a later try, never a lost or blocking alert."""
        now = time.time()
        async with self.db.write() as conn:
            if self.db.postgres:  # one claimant at a time: two workers must not each mail one subscription
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({ALERT_CLAIM_LOCK})"))
            rows = list(await conn.execute(self._lock(
                select(oe.c.id, oe.c.webhook_id, oe.c.account_id)
                .where(oe.c.email_status == EmailStatus.PENDING.value, oe.c.email_due_at <= now)
                .order_by(oe.c.id).limit(limit))))
            if not rows:
                return []
            by_webhook: dict[int, list[int]] = defaultdict(list)
            for row in rows:
                by_webhook[row.webhook_id].append(row.id)
            # The last email of each subscription: sent, or claimed and being sent right now.
            in_flight = and_(oe.c.email_status == EmailStatus.PENDING.value, oe.c.email_due_at > now)
            last_sent = dict(list(await conn.execute(
                select(oe.c.webhook_id, func.max(oe.c.emailed_at))
                .where(oe.c.webhook_id.in_(sorted(by_webhook)), oe.c.emailed_at.is_not(None),
                       or_(oe.c.email_status == EmailStatus.SENT.value, in_flight))
                .group_by(oe.c.webhook_id))))
            claimed: list[int] = []
            for webhook_id, ids in by_webhook.items():
                due = mail_due_at(last_sent.get(webhook_id), interval)
                if due > now:
                    await conn.execute(update(oe).where(oe.c.id.in_(ids)).values(email_due_at=due))
                else:
                    claimed += ids
            if not claimed:
                return []
            await conn.execute(update(oe).where(oe.c.id.in_(claimed)).values(email_due_at=now + retry_after,
                                                                             emailed_at=now))
            described = await _describe(conn, claimed)
            a, acc = t.account_alerts.c, t.accounts.c
            addresses = {row.account_id: (row.email, row.username) for row in await conn.execute(
                select(a.account_id, a.email, acc.username).join(t.accounts, acc.id == a.account_id)
                .where(a.account_id.in_(sorted({row["account_id"] for row in described}))))}
            unaddressed = [row["event"].id for row in described if row["account_id"] not in addresses]
            if unaddressed:  # the address was removed meanwhile
                await conn.execute(update(oe).where(oe.c.id.in_(unaddressed)).values(email_status=EmailStatus.NONE))
        grouped: dict[int, list[OperationalEvent]] = defaultdict(list)
        owner: dict[int, int] = {}
        for item in described:
            if item["account_id"] in addresses:
                grouped[item["webhook_id"]].append(item["event"])
                owner[item["webhook_id"]] = item["account_id"]
        return [Alert(*addresses[owner[webhook_id]], events) for webhook_id, events in grouped.items()]

    async def mailed(self, ids: list[int]) -> None:
        async with self.db.write() as conn:
            await conn.execute(update(oe).where(oe.c.id.in_(ids))
                               .values(email_status=EmailStatus.SENT.value, emailed_at=time.time()))

    async def purge(self, cutoff: float) -> int:
        """Forget operational events older than ``cutoff`` that are fanned out and not waiting for email."""
        async with self.db.write() as conn:
            result = await conn.execute(delete(oe).where(oe.c.occurred_at < cutoff, oe.c.fanned_out_at.is_not(None),
                                                         oe.c.email_status != EmailStatus.PENDING.value))
        return int(result.rowcount or 0)


async def _describe(conn: AsyncConnection, ids: list[int]) -> list[dict[str, Any]]:
    """Each operational event with its subscription and the delivery that caused it (when still there)."""
    w, d, e = t.webhooks, t.deliveries, t.events
    sub_domain, delivery_domain = t.domains.alias("sub_domain"), t.domains.alias("delivery_domain")
    query = (
        select(oe.c.id, oe.c.kind, oe.c.account_id, oe.c.webhook_id, oe.c.detail, oe.c.occurred_at,
               w.c.guid, w.c.url, w.c.event_type, w.c.domain_id, sub_domain.c.name.label("sub_domain"),
               d.c.id.label("delivery_id"), d.c.domain_id.label("delivery_domain_id"), d.c.attempts,
               d.c.status, d.c.last_status_code, d.c.last_error, e.c.event_id,
               delivery_domain.c.name.label("delivery_domain"))
        .select_from(oe.join(w, w.c.id == oe.c.webhook_id)
                     .outerjoin(sub_domain, sub_domain.c.id == w.c.domain_id)
                     .outerjoin(d, d.c.id == oe.c.delivery_id).outerjoin(e, e.c.id == d.c.event_pk)
                     .outerjoin(delivery_domain, delivery_domain.c.id == d.c.domain_id))
        .where(oe.c.id.in_(ids)).order_by(oe.c.id)
    )
    described = []
    for row in await conn.execute(query):
        kind = OperationalKind(row.kind)
        delivery = None
        if row.delivery_id is not None and kind == OperationalKind.DELIVERY_EXHAUSTED:
            delivery = {"id": row.delivery_id, "event_id": row.event_id, "domain": row.delivery_domain,
                        "status": row.status, "attempts": row.attempts, "last_status_code": row.last_status_code,
                        "last_error": row.last_error}
        event = OperationalEvent(
            id=row.id, kind=kind, occurred_at=row.occurred_at, detail=row.detail, delivery=delivery,
            subscription={"guid": row.guid, "url": row.url, "event_type": row.event_type, "domain": row.sub_domain})
        described.append({"event": event, "account_id": row.account_id, "webhook_id": row.webhook_id,
                          "domain_id": row.delivery_domain_id or row.domain_id})
    return described


async def _any_domain(conn: AsyncConnection, webhook_id: int, account_id: int) -> int | None:
    """A domain to file an operational event of an account-level subscription under (its event row needs
    one): that of the subscription's latest delivery, else any of the account's."""
    d = t.deliveries.c
    found = (await conn.execute(select(d.domain_id).where(d.webhook_id == webhook_id)
                                .order_by(d.id.desc()).limit(1))).scalar()
    if found is None:
        found = (await conn.execute(select(t.domains.c.id).where(t.domains.c.account_id == account_id)
                                    .order_by(t.domains.c.id).limit(1))).scalar()
    return found


async def _deliver(conn: AsyncConnection, account_id: int, domain_id: int, event: OperationalEvent,
                   targets: list[Any], now: float) -> int:
    """The event row and one delivery per operational webhook (a disabled one gets a failed row, as at
    ingest); returns how many are due."""
    body = orjson.dumps(payload(event)).decode()
    event_pk = (await conn.execute(insert(t.events).values(
        event_id=f"op_{event.id}", account_id=account_id, domain_id=domain_id, event_type=event.kind.value,
        occurred_at=event.occurred_at, received_at=now, payload=body).returning(t.events.c.id))).scalar_one()
    rows = []
    for hook in targets:
        disabled = hook.disabled_at is not None
        rows.append({"event_pk": event_pk, "webhook_id": hook.id, "account_id": account_id, "domain_id": domain_id,
                     "attempts": 0, "status": DeliveryStatus.FAILED if disabled else DeliveryStatus.PENDING,
                     "next_attempt_at": None if disabled else now,
                     "last_error": webhook_disabled_error(hook.disabled_reason) if disabled else None,
                     "created_at": now, "updated_at": now})
    await conn.execute(insert(t.deliveries), rows)
    return sum(1 for r in rows if r["status"] == DeliveryStatus.PENDING)
