"""Intake sources in storage (``core.sources.service.SourceStorage``). Every owner's query is scoped by
account id; only the intake looks a source up by guid alone."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import Select, delete, insert, select

from mailhooks.core.models import Account, Domain
from mailhooks.core.sources.base import Provider
from mailhooks.core.sources.service import Source
from mailhooks.db import schema as t
from mailhooks.db.store import Store


def _select() -> Select[Any]:
    s, dm, a = t.sources, t.domains, t.accounts
    return (select(s, dm.c.name.label("domain"), a.c.guid.label("account_guid"))
            .join(dm, dm.c.id == s.c.domain_id).join(a, a.c.id == s.c.account_id))


def _source(row: Any) -> Source:
    fields = dict(row._mapping)
    return Source(id=fields["id"], guid=fields["guid"], account_id=fields["account_id"],
                  account_guid=fields["account_guid"], domain_id=fields["domain_id"],
                  domain=fields["domain"], provider=Provider(fields["provider"]), config=orjson.loads(fields["config"]),
                  created_at=fields["created_at"])


class SourceStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get_domain(self, account_id: int, name: str) -> Domain | None:
        return await self.store.get_domain(account_id, name)

    async def get_account(self, account_id: int) -> Account | None:
        return await self.store.get_account(account_id)

    async def add_source(self, account_id: int, domain_id: int, provider: Provider,
                         config: Mapping[str, Any]) -> Source:
        guid = str(uuid.uuid4())
        async with self.store.write() as conn:
            await conn.execute(insert(t.sources).values(
                guid=guid, account_id=account_id, domain_id=domain_id, provider=provider.value,
                config=orjson.dumps(dict(config)).decode(), created_at=time.time()))
        found = await self.get_source(guid)
        assert found is not None
        return found

    async def list_sources(self, account_id: int) -> list[Source]:
        async with self.store.read() as conn:
            rows = await conn.execute(_select().where(t.sources.c.account_id == account_id).order_by(t.sources.c.id))
            return [_source(row) for row in rows]

    async def get_source(self, guid: str) -> Source | None:
        async with self.store.read() as conn:
            row = (await conn.execute(_select().where(t.sources.c.guid == guid))).first()
        return _source(row) if row is not None else None

    async def delete_source(self, account_id: int, guid: str) -> bool:
        async with self.store.write() as conn:
            result = await conn.execute(delete(t.sources).where(t.sources.c.guid == guid,
                                                                t.sources.c.account_id == account_id))
            return bool(result.rowcount)
