"""The audit log's storage: one row per change, written inside the change's own transaction
(``record_in``), and read back a page at a time, newest first."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailhooks.core.audit import MAX_TARGET, AuditAction, AuditEntry, current_actor
from mailhooks.core.masking import masked_url
from mailhooks.db import schema as t


def webhook_target(guid: str, event_type: str, url: str) -> str:
    """How the audit log names a webhook: its guid, its event type and its URL (a password in the URL
    masked: the log is read back)."""
    return f"webhook {guid} {event_type} {masked_url(url)}"


async def record_in(conn: AsyncConnection, account_id: int, action: AuditAction, target: str,
                    actor: str | None = None) -> None:
    """Record ``action`` on ``target`` in the transaction of ``conn``: the entry exists exactly when the
    change does. ``actor`` defaults to ``core.audit.current_actor()``; with none, nothing is recorded."""
    who = actor if actor is not None else current_actor()
    if who is None:
        return
    await conn.execute(insert(t.audit_log).values(account_id=account_id, at=time.time(), actor=who[:300],
                                                  action=str(action), target=target[:MAX_TARGET]))


async def page(conn: AsyncConnection, account_id: int, before: int | None, limit: int) -> list[AuditEntry]:
    """The account's entries newest first, those with an id below ``before`` (the cursor) when given."""
    c = t.audit_log.c
    query: Any = select(c.id, c.at, c.actor, c.action, c.target).where(c.account_id == account_id)
    if before is not None:
        query = query.where(c.id < before)
    rows = await conn.execute(query.order_by(c.id.desc()).limit(limit))
    return [AuditEntry(**row._mapping) for row in rows]
