"""Read queries behind the web dashboard (``/ui``).

Reads only: every action the dashboard offers (retry, recover, re-enable, subscriptions, keys) goes
through the same core and storage functions as the APIs; a delivery is the native API's select
(``db.deliveries``) with a little more. Every query here is scoped by account id,
so another account's rows are indistinguishable from missing ones. Lists are paged in SQL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Integer, and_, case, cast, func, or_, select

from mailhooks.core.deliveries import IN_QUEUE
from mailhooks.core.models import ApiKey, Domain
from mailhooks.db import schema as t
from mailhooks.db.deliveries import delivery_select
from mailhooks.db.store import Store

DAY = 24 * 3600.0
# Besides the native API's columns, the dashboard links a delivery to its webhook's page (domain or account).
_WEBHOOK_DOMAIN = t.webhooks.c.domain_id.label("webhook_domain_id")


@dataclass(frozen=True, slots=True)
class DomainHealth:
    counts: dict[str, int] = field(default_factory=dict)  # deliveries created in the window, by status
    failing_webhooks: int = 0  # failing right now (a run of failed attempts) or disabled
    oldest_pending_at: float | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    domain_id: int | None = None
    status: str | None = None
    event_type: str | None = None
    webhook_guid: str | None = None
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    rows: list[dict[str, Any]]
    newer: int | None  # cursor (``after``) for the previous page, if there is one
    older: int | None  # cursor (``before``) for the next page, if there is one


@dataclass(frozen=True, slots=True)
class Minute:
    start: float
    ok: int
    failed: int
    avg_ms: float | None


class Dashboard:
    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------ domains
    async def domains_page(self, account_id: int, offset: int, limit: int) -> tuple[list[Domain], int]:
        d = t.domains
        async with self.store.read() as conn:
            total = (await conn.execute(select(func.count()).select_from(d).where(d.c.account_id == account_id))
                     ).scalar_one()
            rows = await conn.execute(select(d).where(d.c.account_id == account_id).order_by(d.c.name)
                                      .offset(offset).limit(limit))
            return [Domain(**row._mapping) for row in rows], int(total)

    async def health(self, account_id: int, domain_ids: list[int], now: float | None = None,
                     window: float = DAY) -> dict[int, DomainHealth]:
        """Per domain: deliveries created in the last ``window`` seconds by status, failing webhooks
        (including the account-level ones, which fire for every domain), the oldest unfinished delivery."""
        if not domain_ids:
            return {}
        now = time.time() if now is None else now
        dv, w = t.deliveries, t.webhooks
        counts: dict[int, dict[str, int]] = {i: {} for i in domain_ids}
        oldest: dict[int, float] = {}
        failing: dict[int | None, int] = {}
        async with self.store.read() as conn:
            for row in await conn.execute(
                select(dv.c.domain_id, dv.c.status, func.count())
                .where(dv.c.account_id == account_id, dv.c.domain_id.in_(domain_ids), dv.c.created_at >= now - window)
                .group_by(dv.c.domain_id, dv.c.status)
            ):
                counts[row[0]][row[1]] = int(row[2])
            for row in await conn.execute(
                select(dv.c.domain_id, func.min(dv.c.created_at))
                .where(dv.c.account_id == account_id, dv.c.domain_id.in_(domain_ids),
                       dv.c.status.in_(IN_QUEUE))
                .group_by(dv.c.domain_id)
            ):
                oldest[row[0]] = float(row[1])
            for row in await conn.execute(
                select(w.c.domain_id, func.count())
                .where(w.c.account_id == account_id, w.c.deleted_at.is_(None),
                       or_(w.c.domain_id.is_(None), w.c.domain_id.in_(domain_ids)),
                       or_(w.c.failing_since.is_not(None), w.c.disabled_at.is_not(None)))
                .group_by(w.c.domain_id)
            ):
                failing[row[0]] = int(row[1])
        account_level = failing.get(None, 0)
        return {
            i: DomainHealth(counts[i], failing.get(i, 0) + account_level, oldest.get(i)) for i in domain_ids
        }

    # ------------------------------------------------------------------ deliveries
    async def deliveries_page(self, account_id: int, flt: DeliveryFilter, before: int | None = None,
                              after: int | None = None, limit: int = 25) -> DeliveryPage:
        """Newest first, keyset-paged on the delivery id: ``before`` pages older, ``after`` newer."""
        d = t.deliveries
        query = delivery_select(account_id, _WEBHOOK_DOMAIN)
        conditions = []
        if flt.domain_id is not None:
            conditions.append(d.c.domain_id == flt.domain_id)
        if flt.status:
            conditions.append(d.c.status == flt.status)
        if flt.event_type:
            conditions.append(t.events.c.event_type == flt.event_type)
        if flt.webhook_guid:
            conditions.append(t.webhooks.c.guid == flt.webhook_guid)
        if flt.since is not None:
            conditions.append(d.c.created_at >= flt.since)
        if flt.until is not None:
            conditions.append(d.c.created_at < flt.until)
        if conditions:
            query = query.where(and_(*conditions))
        if after is not None:
            query = query.where(d.c.id > after).order_by(d.c.id.asc()).limit(limit + 1)
        else:
            if before is not None:
                query = query.where(d.c.id < before)
            query = query.order_by(d.c.id.desc()).limit(limit + 1)
        async with self.store.read() as conn:
            rows = [dict(row._mapping) for row in await conn.execute(query)]
        more = len(rows) > limit
        rows = rows[:limit]
        if after is not None:
            rows.reverse()
            newer = rows[0]["id"] if more and rows else None
            older = rows[-1]["id"] if rows else None
        else:
            newer = rows[0]["id"] if before is not None and rows else None
            older = rows[-1]["id"] if more and rows else None
        return DeliveryPage(rows, newer, older)

    async def delivery(self, account_id: int, delivery_id: int, attempts_offset: int = 0,
                       attempts_limit: int = 50) -> tuple[dict[str, Any], list[dict[str, Any]], int] | None:
        """One delivery with its event payload and a page of its attempts (newest first), and the
        attempt count; ``None`` if this account has no such delivery."""
        a, e = t.attempts, t.events
        async with self.store.read() as conn:
            row = (await conn.execute(
                delivery_select(account_id, _WEBHOOK_DOMAIN, e.c.payload, e.c.occurred_at)
                .where(t.deliveries.c.id == delivery_id))).first()
            if row is None:
                return None
            total = (await conn.execute(select(func.count()).select_from(a).where(a.c.delivery_id == delivery_id))
                     ).scalar_one()
            attempts = []
            for r in await conn.execute(
                select(a.c.number, a.c.started_at, a.c.duration_ms, a.c.status_code, a.c.response_excerpt, a.c.error,
                       a.c.request_headers)
                .where(a.c.delivery_id == delivery_id).order_by(a.c.id.desc())
                .offset(attempts_offset).limit(attempts_limit)
            ):
                item = dict(r._mapping)
                item["request_headers"] = orjson.loads(r.request_headers) if r.request_headers else None
                attempts.append(item)
        detail = dict(row._mapping)
        detail["payload"] = orjson.loads(detail["payload"])
        return detail, attempts, int(total)

    async def webhook_choices(self, account_id: int) -> list[dict[str, Any]]:
        """Live subscriptions for the deliveries filter: guid, type, url, domain name (None = account)."""
        w, dm = t.webhooks, t.domains
        query = (select(w.c.guid, w.c.event_type, w.c.url, dm.c.name.label("domain"))
                 .outerjoin(dm, dm.c.id == w.c.domain_id)
                 .where(w.c.account_id == account_id, w.c.deleted_at.is_(None))
                 .order_by(dm.c.name, w.c.event_type, w.c.id).limit(500))
        async with self.store.read() as conn:
            return [dict(row._mapping) for row in await conn.execute(query)]

    # ------------------------------------------------------------------ the last hour
    async def per_minute(self, account_id: int, now: float | None = None, minutes: int = 60) -> list[Minute]:
        """Attempts per minute for the last ``minutes`` (2xx vs. everything else) and their mean latency."""
        now = time.time() if now is None else now
        end = (int(now) // 60 + 1) * 60
        start = end - minutes * 60
        a, d = t.attempts, t.deliveries
        offset = (a.c.started_at - start) / 60
        bucket = func.floor(offset) if self.store.postgres else cast(offset, Integer)
        ok = func.sum(case((and_(a.c.status_code >= 200, a.c.status_code < 300), 1), else_=0))
        query = (
            select(bucket.label("bucket"), func.count(), ok, func.avg(a.c.duration_ms))
            .select_from(a.join(d, d.c.id == a.c.delivery_id))
            .where(d.c.account_id == account_id, a.c.started_at >= start, a.c.started_at < end)
            .group_by(bucket)
        )
        found: dict[int, tuple[int, int, float | None]] = {}
        async with self.store.read() as conn:
            for row in await conn.execute(query):
                total, good = int(row[1]), int(row[2] or 0)
                found[int(row[0])] = (good, total - good, float(row[3]) if row[3] is not None else None)
        return [Minute(start + i * 60, *found.get(i, (0, 0, None))) for i in range(minutes)]

    # ------------------------------------------------------------------ keys
    async def api_keys_page(self, account_id: int, offset: int, limit: int) -> tuple[list[ApiKey], int]:
        k = t.api_keys
        async with self.store.read() as conn:
            total = (await conn.execute(select(func.count()).select_from(k).where(k.c.account_id == account_id))
                     ).scalar_one()
            rows = await conn.execute(
                select(k.c.id, k.c.account_id, k.c.prefix, k.c.created_at, k.c.last_used_at, k.c.revoked_at,
                       k.c.scope, k.c.domain)
                .where(k.c.account_id == account_id)
                .order_by(k.c.revoked_at.is_not(None), k.c.id.desc()).offset(offset).limit(limit))
            return [ApiKey(**row._mapping) for row in rows], int(total)
