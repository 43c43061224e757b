"""The native subscriptions API in SQL: an account's subscriptions (webhook rows of every dialect, with
their domain's name) listed and read, and their settings changed in one transaction."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, select, update

from mailhooks.core.audit import AuditAction
from mailhooks.core.models import Webhook
from mailhooks.core.subscriptions import SubscriptionSettings, settings_to_columns
from mailhooks.db import audit
from mailhooks.db import schema as t
from mailhooks.db.audit import webhook_target
from mailhooks.db.database import Database
from mailhooks.db.store import webhook_from_mapping, webhook_from_row

Listed = tuple[Webhook, str | None]  # a subscription and its domain's name (None: account-level)


def _query() -> Select[Any]:
    return select(t.webhooks, t.domains.c.name.label("domain_name")).outerjoin(
        t.domains, t.domains.c.id == t.webhooks.c.domain_id)


def _listed(row: Any) -> Listed:
    fields = dict(row._mapping)
    name = fields.pop("domain_name")
    return webhook_from_mapping(fields), name


async def list_subscriptions(db: Database, account_id: int, *, domain_id: int | None, event_type: str | None,
                             after: int | None, limit: int) -> list[Listed]:
    """The account's live subscriptions by id (``after``: the id the previous page ended at); ``domain_id``
    keeps that domain's rows and the account-level ones (the rows its events reach)."""
    c = t.webhooks.c
    query = _query().where(c.account_id == account_id, c.deleted_at.is_(None))
    if domain_id is not None:
        query = query.where((c.domain_id == domain_id) | c.domain_id.is_(None))
    if event_type is not None:
        query = query.where(c.event_type == event_type)
    if after is not None:
        query = query.where(c.id > after)
    async with db.read() as conn:
        return [_listed(row) for row in await conn.execute(query.order_by(c.id).limit(limit))]


async def get_subscription(db: Database, account_id: int, guid: str) -> Listed | None:
    """One live subscription of this account; another account's is ``None`` like an unknown guid."""
    c = t.webhooks.c
    async with db.read() as conn:
        row = (await conn.execute(_query().where(c.account_id == account_id, c.guid == guid,
                                                 c.deleted_at.is_(None)))).first()
    return _listed(row) if row is not None else None


async def change_settings(db: Database, account_id: int, guid: str,
                          change: Callable[[SubscriptionSettings], SubscriptionSettings]) -> Listed | None:
    """Apply ``change`` (which may raise) to the stored settings and store the result, in one
    transaction with the row locked, so two concurrent partial updates both land."""
    c = t.webhooks.c
    async with db.write() as conn:
        row = (await conn.execute(select(t.webhooks).where(c.account_id == account_id, c.guid == guid,
                                                           c.deleted_at.is_(None)).with_for_update())).first()
        if row is None:
            return None
        settings = change(webhook_from_row(row).settings)
        await conn.execute(update(t.webhooks).where(c.id == row.id)
                           .values(modified_at=time.time(), **settings_to_columns(settings)))
        await audit.record_in(conn, account_id, AuditAction.WEBHOOK_CHANGED,
                              webhook_target(row.guid, row.event_type, row.url) + " settings")
        found = (await conn.execute(_query().where(c.id == row.id))).one()
    return _listed(found)
