"""API keys, the signing key and the audit log of an account: the part of ``Store`` that says who may
act and records what they did."""

from __future__ import annotations

import time

from sqlalchemy import insert, select, update

from mailhooks.core.audit import AuditAction, AuditEntry
from mailhooks.core.models import Account, ApiKey
from mailhooks.core.scopes import KeyGrant, Scope
from mailhooks.db import audit
from mailhooks.db import schema as t
from mailhooks.db.database import Database
from mailhooks.db.key_usage import KeyUsage


class AccountKeys(Database):
    """Keys and the audit log (``Store`` inherits it)."""

    _key_usage: KeyUsage | None = None

    async def rotate_signing_key(self, account_id: int, signing_key: str, previous_until: float | None) -> None:
        a = t.accounts
        # ``previous_signing_key = signing_key`` reads the row as it was before this UPDATE (both backends).
        previous = a.c.signing_key if previous_until is not None else None
        async with self.write() as conn:
            await conn.execute(update(a).where(a.c.id == account_id).values(
                signing_key=signing_key, previous_signing_key=previous, previous_key_until=previous_until))
            await audit.record_in(conn, account_id, AuditAction.SIGNING_KEY_ROTATED, "signing key")

    async def add_api_key(self, account_id: int, key_hash: str, prefix: str, scope: Scope = Scope.ADMIN,
                          domain: str | None = None) -> ApiKey:
        now = time.time()
        async with self.write() as conn:
            result = await conn.execute(
                insert(t.api_keys)
                .values(account_id=account_id, key_hash=key_hash, prefix=prefix, created_at=now, scope=str(scope),
                        domain=domain)
                .returning(t.api_keys.c.id)
            )
            key_id = result.scalar_one()
            await audit.record_in(conn, account_id, AuditAction.KEY_CREATED, _key_target(prefix, scope, domain))
        return ApiKey(id=key_id, account_id=account_id, prefix=prefix, created_at=now, last_used_at=None,
                      revoked_at=None, scope=str(scope), domain=domain)

    async def find_key(self, key_hash: str) -> tuple[Account, str] | None:
        """The account owning an unrevoked key with this hash, and the stored hash (for a constant-time check)."""
        found = await self.find_grant(key_hash)
        return None if found is None else (found[0], found[1])

    async def find_grant(self, key_hash: str) -> tuple[Account, str, KeyGrant] | None:
        """``find_key`` and what the key may do."""
        if self.cache is not None:
            return await self.cache.get(("find_grant", key_hash), lambda: self._find_grant(key_hash))
        return await self._find_grant(key_hash)

    async def _find_grant(self, key_hash: str) -> tuple[Account, str, KeyGrant] | None:
        k = t.api_keys.c
        query = (
            select(t.accounts, k.key_hash, k.id.label("key_id"), k.prefix, k.scope, k.domain)
            .join(t.api_keys, k.account_id == t.accounts.c.id)
            .where(k.key_hash == key_hash, k.revoked_at.is_(None))
        )
        async with self.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        data = dict(row._mapping)
        stored = data.pop("key_hash")
        grant = KeyGrant(key_id=data.pop("key_id"), prefix=data.pop("prefix"), scope=Scope(data.pop("scope")),
                         domain=data.pop("domain"))
        return Account(**data), stored, grant

    async def list_api_keys(self, account_id: int) -> list[ApiKey]:
        k = t.api_keys.c
        query = (select(k.id, k.account_id, k.prefix, k.created_at, k.last_used_at, k.revoked_at, k.scope, k.domain)
                 .where(k.account_id == account_id).order_by(k.id))
        async with self.read() as conn:
            return [ApiKey(**row._mapping) for row in await conn.execute(query)]

    async def revoke_api_key(self, prefix: str, account_id: int | None = None) -> int:
        k = t.api_keys.c
        conditions = [k.prefix == prefix, k.revoked_at.is_(None)]
        if account_id is not None:
            conditions.append(k.account_id == account_id)
        async with self.write() as conn:
            result = await conn.execute(update(t.api_keys).where(*conditions).values(revoked_at=time.time())
                                        .returning(k.account_id, k.prefix, k.scope, k.domain))
            revoked = result.all()
            for row in revoked:
                await audit.record_in(conn, row.account_id, AuditAction.KEY_REVOKED,
                                      _key_target(row.prefix, row.scope, row.domain))
        return len(revoked)

    # ---------------------------------------------------------------- last use
    def note_key_use(self, key_id: int) -> None:
        """The key was used now: recorded within a minute, without a write on the request's path."""
        if self._key_usage is None:
            self._key_usage = KeyUsage(self)
        self._key_usage.note(key_id)

    async def close(self) -> None:
        if self._key_usage is not None:
            await self._key_usage.flush()
        await super().close()

    # ---------------------------------------------------------------- audit log
    async def record_audit(self, account_id: int, action: AuditAction, target: str,
                           actor: str | None = None) -> None:
        """``core.audit.AuditLog``: record in a transaction of its own (``db.audit.record_in`` joins one)."""
        async with self.write(config=False) as conn:
            await audit.record_in(conn, account_id, action, target, actor)

    async def audit_page(self, account_id: int, before: int | None, limit: int) -> list[AuditEntry]:
        async with self.read() as conn:
            return await audit.page(conn, account_id, before, limit)


def _key_target(prefix: str, scope: str, domain: str | None) -> str:
    return f"key {prefix} ({scope}{', ' + domain if domain else ''})"
