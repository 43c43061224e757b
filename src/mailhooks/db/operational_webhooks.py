"""The configuration of operational events: an account's operational webhooks and its alert address.

An operational webhook is stored as ``webhooks`` rows of payload format ``operational``, account level,
one row per event type, sharing the operational webhook's guid as their ``group_id``: so its deliveries
are ordinary deliveries (the same queue, retries, signatures, delivery log). The dialects' lists and
plans leave these rows out (``db.store``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update

from mailhooks.core.operational import OPERATIONAL_FORMAT, OperationalKind
from mailhooks.db import schema as t
from mailhooks.db.database import Database

w = t.webhooks.c


class OperationalWebhooks:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, account_id: int, url: str, kinds: Sequence[OperationalKind]) -> dict[str, Any]:
        now = time.time()
        guid = str(uuid.uuid4())
        async with self.db.write() as conn:
            await conn.execute(insert(t.webhooks), [
                {"guid": str(uuid.uuid4()), "account_id": account_id, "domain_id": None, "event_type": kind.value,
                 "url": url, "payload_format": OPERATIONAL_FORMAT, "group_id": guid, "position": 0,
                 "created_at": now, "modified_at": now} for kind in kinds])
        return {"guid": guid, "url": url, "event_types": [k.value for k in kinds], "created_at": now,
                "disabled_reason": None}

    async def list(self, account_id: int) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = list(await conn.execute(
                select(w.group_id, w.url, w.event_type, w.created_at, w.disabled_reason, w.disabled_at)
                .where(w.account_id == account_id, w.payload_format == OPERATIONAL_FORMAT, w.deleted_at.is_(None))
                .order_by(w.id)))
        found: dict[str, dict[str, Any]] = {}
        for row in rows:
            item = found.setdefault(row.group_id, {"guid": row.group_id, "url": row.url, "event_types": [],
                                                   "created_at": row.created_at, "disabled_reason": None})
            item["event_types"].append(row.event_type)
            if row.disabled_at is not None:
                item["disabled_reason"] = row.disabled_reason or "disabled"
        return list(found.values())

    async def delete(self, account_id: int, guid: str) -> bool:
        """Soft delete (its deliveries keep pointing at real rows); ``False`` when the account has no such."""
        now = time.time()
        async with self.db.write() as conn:
            result = await conn.execute(
                update(t.webhooks).where(w.account_id == account_id, w.group_id == guid,
                                         w.payload_format == OPERATIONAL_FORMAT, w.deleted_at.is_(None))
                .values(deleted_at=now, modified_at=now))
        return bool(result.rowcount)

    async def alert_email(self, account_id: int) -> str | None:
        async with self.db.read() as conn:
            return (await conn.execute(select(t.account_alerts.c.email)
                                       .where(t.account_alerts.c.account_id == account_id))).scalar()

    async def set_alert_email(self, account_id: int, email: str | None) -> None:
        """Set (or with ``None`` remove) the address the account's operational events are mailed to."""
        async with self.db.write() as conn:
            await conn.execute(delete(t.account_alerts).where(t.account_alerts.c.account_id == account_id))
            if email is not None:
                await conn.execute(insert(t.account_alerts).values(account_id=account_id, email=email,
                                                                   updated_at=time.time()))
