"""Configuration storage: accounts, API keys, domains, webhooks and the installation's secrets, on
top of :class:`~mailhooks.db.database.Database`. Every method is one transaction.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from mailhooks.core.audit import AuditAction
from mailhooks.core.errors import Conflict
from mailhooks.core.message_ids import new_message_id_key
from mailhooks.core.models import Account, Domain, NewWebhook, Webhook
from mailhooks.core.operational import OPERATIONAL_FORMAT
from mailhooks.core.ports import WebhookPlan
from mailhooks.core.subscriptions import settings_from_columns
from mailhooks.db import audit
from mailhooks.db import schema as t
from mailhooks.db.audit import webhook_target
from mailhooks.db.keys import AccountKeys

MESSAGE_ID_KEY = "webhook-id"  # its row in instance_secrets


SETTINGS_COLUMNS = ("headers", "filters", "rate_limit_per_second", "timeout_seconds", "retry_schedule", "ordering")


def webhook_from_row(row: Any) -> Webhook:
    return webhook_from_mapping(dict(row._mapping))


def webhook_from_mapping(fields: dict[str, Any]) -> Webhook:
    """A webhook from its row's columns (``fields`` is consumed)."""
    settings = settings_from_columns(*(fields.pop(name) for name in SETTINGS_COLUMNS))
    return Webhook(**fields, settings=settings)


class Store(AccountKeys):
    """Async access to the configuration tables. Construct with a database URL (``cache=True`` for the
    API server: see ``Database``); call ``close()`` when done."""

    _message_id_key: bytes | None = None

    async def message_id_key(self) -> bytes:
        """The installation's ``webhook-id`` key (``core.message_ids``). The first process to ask makes it;
        every process reads the same one, and it never changes, so it is read once."""
        if self._message_id_key is None:
            s = t.instance_secrets
            async with self.read() as conn:
                value = (await conn.execute(select(s.c.value).where(s.c.name == MESSAGE_ID_KEY))).scalar()
            if value is None:
                async with self.write() as conn:  # two first processes at once: one key wins
                    await conn.execute(self.insert(s).values(
                        name=MESSAGE_ID_KEY, value=new_message_id_key(), created_at=time.time(),
                    ).on_conflict_do_nothing(index_elements=["name"]))
                    value = (await conn.execute(select(s.c.value).where(s.c.name == MESSAGE_ID_KEY))).scalar_one()
            self._message_id_key = bytes.fromhex(value)
        return self._message_id_key

    # ---------------------------------------------------------------- accounts and keys
    async def create_account(self, username: str, signing_key: str) -> Account:
        now = time.time()
        values: dict[str, Any] = {"guid": str(uuid.uuid4()), "username": username, "signing_key": signing_key,
                                  "created_at": now}
        try:
            async with self.write() as conn:
                result = await conn.execute(insert(t.accounts).values(**values).returning(t.accounts.c.id))
                account_id = result.scalar_one()
        except IntegrityError as exc:
            raise Conflict(f"Account {username!r} already exists") from exc
        return Account(id=account_id, **values)

    async def count_accounts(self) -> int:
        async with self.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(t.accounts))).scalar_one())

    async def get_account(self, account_id: int) -> Account | None:
        async with self.read() as conn:
            row = (await conn.execute(select(t.accounts).where(t.accounts.c.id == account_id))).first()
        return Account(**row._mapping) if row else None

    async def get_account_by_username(self, username: str) -> Account | None:
        async with self.read() as conn:
            row = (await conn.execute(select(t.accounts).where(t.accounts.c.username == username))).first()
        return Account(**row._mapping) if row else None

    # ---------------------------------------------------------------- domains
    async def add_domain(self, account_id: int, name: str, secret: str) -> Domain:
        now = time.time()
        values: dict[str, Any] = {"guid": str(uuid.uuid4()), "name": name, "account_id": account_id, "secret": secret,
                  "created_at": now}
        try:
            async with self.write() as conn:
                result = await conn.execute(insert(t.domains).values(**values).returning(t.domains.c.id))
                domain_id = result.scalar_one()
        except IntegrityError as exc:
            raise Conflict(f"Domain {name!r} already exists") from exc
        return Domain(id=domain_id, **values)

    async def list_domains(self, account_id: int | None = None) -> list[Domain]:
        query = select(t.domains).order_by(t.domains.c.name)
        if account_id is not None:
            query = query.where(t.domains.c.account_id == account_id)
        async with self.read() as conn:
            return [Domain(**row._mapping) for row in await conn.execute(query)]

    async def get_domain(self, account_id: int, name: str) -> Domain | None:
        """The domain called ``name`` if this account owns it; another account's domain is ``None`` too."""
        if self.cache is not None:
            return await self.cache.get(("get_domain", account_id, name), lambda: self._get_domain(account_id, name))
        return await self._get_domain(account_id, name)

    async def _get_domain(self, account_id: int, name: str) -> Domain | None:
        query = select(t.domains).where(t.domains.c.name == name, t.domains.c.account_id == account_id)
        async with self.read() as conn:
            row = (await conn.execute(query)).first()
        return Domain(**row._mapping) if row else None

    async def get_domain_by_name(self, name: str) -> Domain | None:
        async with self.read() as conn:
            row = (await conn.execute(select(t.domains).where(t.domains.c.name == name))).first()
        return Domain(**row._mapping) if row else None

    async def get_domains_by_id(self, ids: Iterable[int]) -> dict[int, Domain]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        async with self.read() as conn:
            rows = await conn.execute(select(t.domains).where(t.domains.c.id.in_(wanted)))
            return {row.id: Domain(**row._mapping) for row in rows}

    # ---------------------------------------------------------------- webhooks
    async def list_webhooks(
        self,
        account_id: int,
        domain_id: int | None,
        event_type: str | None = None,
        event_types: Sequence[str] | None = None,
        include_deleted: bool = False,
        group_id: str | None = None,
    ) -> list[Webhook]:
        """Webhooks of one domain (``domain_id``) or the account-level ones (``domain_id=None``), by id."""
        args = (account_id, domain_id, event_type, tuple(event_types) if event_types is not None else None,
                include_deleted, group_id)
        if self.cache is None:
            return await self._list_webhooks(*args)
        return list(await self.cache.get(("list_webhooks", *args), lambda: self._list_webhooks(*args)))

    async def _list_webhooks(self, account_id: int, domain_id: int | None, event_type: str | None,
                             event_types: Sequence[str] | None, include_deleted: bool, group_id: str | None
                             ) -> list[Webhook]:
        c = t.webhooks.c
        # Operational webhooks (db.operational_webhooks) are rows here too, but no dialect's subscriptions.
        conditions = [c.account_id == account_id, c.payload_format != OPERATIONAL_FORMAT]
        conditions.append(c.domain_id.is_(None) if domain_id is None else c.domain_id == domain_id)
        if event_type is not None:
            conditions.append(c.event_type == event_type)
        if event_types is not None:
            conditions.append(c.event_type.in_(list(event_types)))
        if group_id is not None:
            conditions.append(c.group_id == group_id)
        if not include_deleted:
            conditions.append(c.deleted_at.is_(None))
        async with self.read() as conn:
            rows = await conn.execute(select(t.webhooks).where(and_(*conditions)).order_by(c.id))
            return [webhook_from_row(row) for row in rows]

    async def get_webhook(self, account_id: int, guid: str, domain_id: int | None = None,
                          any_domain: bool = False) -> Webhook | None:
        c = t.webhooks.c
        conditions = [c.account_id == account_id, c.guid == guid, c.deleted_at.is_(None)]
        if not any_domain:
            conditions.append(c.domain_id.is_(None) if domain_id is None else c.domain_id == domain_id)
        async with self.read() as conn:
            row = (await conn.execute(select(t.webhooks).where(*conditions))).first()
        return webhook_from_row(row) if row else None

    async def get_webhook_by_id(self, webhook_id: int) -> Webhook | None:
        async with self.read() as conn:
            row = (await conn.execute(select(t.webhooks).where(t.webhooks.c.id == webhook_id))).first()
        return webhook_from_row(row) if row else None

    async def change_webhooks(
        self,
        add: Sequence[NewWebhook] = (),
        remove_ids: Sequence[int] = (),
        hard_delete: bool = False,
    ) -> list[Webhook]:
        """Insert ``add`` and delete ``remove_ids`` in one transaction; return the inserted rows.

        Deletes are soft (``deleted_at``) so that deliveries keep pointing at a real row.
        """
        async with self.write() as conn:
            return await self._change_webhooks(conn, add, remove_ids, hard_delete)

    async def plan_webhooks(self, account_id: int, domain_id: int | None, plan: WebhookPlan,
                            set_values: tuple[int, dict[str, Any]] | None = None) -> list[Webhook]:
        """Check and change one scope's webhooks atomically: ``plan`` sees the live rows of the account's
        domain (``domain_id=None``: its account-level rows) and returns ``(add, remove_ids)`` or raises.
        ``set_values=(webhook_id, values)`` also updates that row in place once the plan has passed.

        Changes to one account's webhooks are serialized (its row is locked on PostgreSQL; SQLite has a
        single writer), so two concurrent requests cannot both pass a check that only one may pass.
        """
        c = t.webhooks.c
        scope = c.domain_id.is_(None) if domain_id is None else c.domain_id == domain_id
        async with self.write() as conn:
            await conn.execute(
                select(t.accounts.c.id).where(t.accounts.c.id == account_id).with_for_update(key_share=True)
            )
            rows = await conn.execute(
                select(t.webhooks).where(c.account_id == account_id, scope, c.deleted_at.is_(None),
                                         c.payload_format != OPERATIONAL_FORMAT).order_by(c.id)
            )
            change = plan([webhook_from_row(row) for row in rows])
            add, remove_ids = change[0], change[1]
            if len(change) == 3:
                for webhook_id, position in change[2].items():
                    await conn.execute(update(t.webhooks).where(t.webhooks.c.id == webhook_id)
                                       .values(position=position))
            if set_values is not None:
                webhook_id, values = set_values
                changed = await conn.execute(update(t.webhooks).where(t.webhooks.c.id == webhook_id)
                                             .values(**{"modified_at": time.time(), **values})
                                             .returning(c.guid, c.event_type, c.url))
                await audit.record_in(conn, account_id, AuditAction.WEBHOOK_CHANGED, webhook_target(*changed.one()))
            return await self._change_webhooks(conn, add, remove_ids, False)

    @staticmethod
    async def _change_webhooks(conn: AsyncConnection, add: Sequence[NewWebhook], remove_ids: Sequence[int],
                               hard_delete: bool) -> list[Webhook]:
        now = time.time()
        created: list[Webhook] = []
        if remove_ids:
            ids = list(remove_ids)
            w = t.webhooks.c
            removal = (delete(t.webhooks).where(w.id.in_(ids)) if hard_delete else
                       update(t.webhooks).where(w.id.in_(ids)).values(deleted_at=now, modified_at=now))
            removed = await conn.execute(removal.returning(w.account_id, w.guid, w.event_type, w.url))
            for row in removed.all():
                await audit.record_in(conn, row.account_id, AuditAction.WEBHOOK_DELETED, webhook_target(*row[1:]))
        for new in add:
            values: dict[str, Any] = {
                "guid": str(uuid.uuid4()),
                "account_id": new.account_id,
                "domain_id": new.domain_id,
                "event_type": new.event_type,
                "url": new.url,
                "payload_format": new.payload_format,
                "group_id": new.group_id,
                "description": new.description,
                "position": new.position,
                "created_at": now,
                "modified_at": now,
            }
            result = await conn.execute(insert(t.webhooks).values(**values).returning(t.webhooks.c.id))
            created.append(Webhook(id=result.scalar_one(), **values))
            await audit.record_in(conn, new.account_id, AuditAction.WEBHOOK_CREATED,
                                  webhook_target(values["guid"], new.event_type, new.url))
        return created

    async def update_webhook(self, webhook_id: int, **values: Any) -> Webhook:
        values.setdefault("modified_at", time.time())
        async with self.write() as conn:
            await conn.execute(update(t.webhooks).where(t.webhooks.c.id == webhook_id).values(**values))
            row = (await conn.execute(select(t.webhooks).where(t.webhooks.c.id == webhook_id))).one()
            await audit.record_in(conn, row.account_id, AuditAction.WEBHOOK_CHANGED,
                                  webhook_target(row.guid, row.event_type, row.url))
        return webhook_from_row(row)
