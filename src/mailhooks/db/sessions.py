"""Dashboard sessions: one row per sign-in, so that signing out ends the session on the server.

The cookie carries a random token; only its SHA-256 is stored. A session is valid while its row exists
and has not expired; sign-out deletes the row, so a copy of the cookie stops working with it.
"""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import delete, insert, select

from mailhooks.db import schema as t
from mailhooks.db.store import Store


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class UiSessions:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def open(self, account_id: int, token: str, lifetime: float) -> None:
        now = time.time()
        async with self.store.write() as conn:
            # Expired rows go here, at sign-in: bounded by the sign-ins of the last session lifetime.
            await conn.execute(delete(t.ui_sessions).where(t.ui_sessions.c.expires_at < now))
            await conn.execute(insert(t.ui_sessions).values(token_hash=_digest(token), account_id=account_id,
                                                            created_at=now, expires_at=now + lifetime))

    async def is_open(self, account_id: int, token: str) -> bool:
        query = select(t.ui_sessions.c.id).where(
            t.ui_sessions.c.token_hash == _digest(token), t.ui_sessions.c.account_id == account_id,
            t.ui_sessions.c.expires_at > time.time())
        async with self.store.read() as conn:
            return (await conn.execute(query)).first() is not None

    async def close(self, token: str) -> None:
        async with self.store.write() as conn:
            await conn.execute(delete(t.ui_sessions).where(t.ui_sessions.c.token_hash == _digest(token)))
