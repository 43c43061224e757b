"""Suppression lists in SQL (``core.suppressions.SuppressionStore``), and the two steps of intake that
touch them: which recipients of a batch are suppressed already, and the suppressions new events add."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailhooks.core.suppressions import Suppression, SuppressionKind, SuppressionPage
from mailhooks.db import schema as t
from mailhooks.db.database import Database

_LOOKUP_CHUNK = 500  # (domain, address) pairs per "already suppressed?" query


def _suppression(row: Any) -> Suppression:
    return Suppression(kind=SuppressionKind(row.kind), address=row.address, created_at=row.created_at,
                       code=row.code, error=row.error, tags=tuple(json.loads(row.tags)) if row.tags else ())


def suppression_row(account_id: int, domain_id: int, entry: Suppression) -> dict[str, Any]:
    return {"account_id": account_id, "domain_id": domain_id, "kind": entry.kind, "address": entry.address,
            "code": entry.code, "error": entry.error,
            "tags": json.dumps(list(entry.tags)) if entry.tags else None, "created_at": entry.created_at}


async def upsert(db: Database, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Add entries; an entry that exists is replaced (its code, error, tags and time), as Mailgun does."""
    if not rows:
        return
    # One statement may not touch a row twice (PostgreSQL refuses): the last entry per address wins.
    rows = list({(r["domain_id"], r["kind"], r["address"]): r for r in rows}.values())
    stmt = db.insert(t.suppressions)
    stmt = stmt.on_conflict_do_update(
        index_elements=["domain_id", "kind", "address"],
        set_={"code": stmt.excluded.code, "error": stmt.excluded.error, "tags": stmt.excluded.tags,
              "created_at": stmt.excluded.created_at})
    await conn.execute(stmt, rows)


async def suppressed_recipients(conn: AsyncConnection, pairs: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which (domain id, lower-case address) pairs are on any of their domain's lists."""
    wanted = sorted(set(pairs))
    found: set[tuple[int, str]] = set()
    s = t.suppressions.c
    if not wanted:
        return found
    # Most domains have no list at all: one indexed probe spares the address lookup on every ingest.
    domains = {d for d, _ in wanted}
    if (await conn.execute(select(s.id).where(s.domain_id.in_(domains)).limit(1))).first() is None:
        return found
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start:start + _LOOKUP_CHUNK]
        query = select(s.domain_id, s.address).where(
            s.domain_id.in_({d for d, _ in chunk}), s.address.in_({a for _, a in chunk})).distinct()
        found.update((row.domain_id, row.address) for row in await conn.execute(query))
    return found & set(wanted)


class Suppressions:
    """The suppressions API's storage (``core.suppressions.SuppressionStore``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, domain_id: int, kind: SuppressionKind, limit: int, after: str | None = None,
                   before: str | None = None, from_end: bool = False) -> SuppressionPage:
        """A page in address order: after ``after``, or the ``limit`` just before ``before``, or the last
        ``limit`` (``from_end``)."""
        s = t.suppressions.c
        where = [s.domain_id == domain_id, s.kind == kind]
        if after is not None:
            where.append(s.address > after)
        if before is not None:
            where.append(s.address < before)
        backwards = before is not None or from_end
        order = s.address.desc() if backwards else s.address
        async with self.db.read() as conn:
            rows = list(await conn.execute(select(t.suppressions).where(and_(*where)).order_by(order).limit(limit + 1)))
        items = [_suppression(r) for r in rows[:limit]]
        if backwards:
            items.reverse()
        return SuppressionPage(items, has_more=len(rows) > limit)

    async def get(self, domain_id: int, kind: SuppressionKind, address: str) -> Suppression | None:
        s = t.suppressions.c
        async with self.db.read() as conn:
            row = (await conn.execute(select(t.suppressions).where(
                s.domain_id == domain_id, s.kind == kind, s.address == address))).first()
        return None if row is None else _suppression(row)

    async def add(self, account_id: int, domain_id: int, entries: Sequence[Suppression]) -> int:
        async with self.db.write() as conn:
            await upsert(self.db, conn, [suppression_row(account_id, domain_id, e) for e in entries])
        return len(entries)

    async def delete(self, domain_id: int, kind: SuppressionKind, address: str | None) -> int:
        s = t.suppressions.c
        where = [s.domain_id == domain_id, s.kind == kind]
        if address is not None:
            where.append(s.address == address)
        async with self.db.write() as conn:
            result = await conn.execute(delete(t.suppressions).where(*where))
        return int(result.rowcount or 0)



