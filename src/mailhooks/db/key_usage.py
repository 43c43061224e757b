"""When each API key was last used, written at most once a minute per key.

Ingest must not pay a write per request. Each process remembers when it last wrote each key's time and
writes again only after ``INTERVAL`` seconds, in a background task off the request's path; the UPDATE
itself also skips a value fresher than that, so many processes do not all write each minute either.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from sqlalchemy import or_, update

from mailhooks.db import schema as t
from mailhooks.db.database import Database

log = structlog.get_logger(__name__)

INTERVAL = 60.0  # seconds: how stale ``last_used_at`` may be


class KeyUsage:
    def __init__(self, database: Database, interval: float = INTERVAL) -> None:
        self.database = database
        self.interval = interval
        self._written: dict[int, float] = {}  # key id -> monotonic time of the last write (or attempt)
        self._tasks: set[asyncio.Task[None]] = set()

    def note(self, key_id: int) -> None:
        """The key was just used: schedule a write unless one was made within the interval."""
        now = time.monotonic()
        last = self._written.get(key_id)
        if last is not None and now - last < self.interval:
            return
        if len(self._written) > 100_000:
            self._written.clear()
        self._written[key_id] = now
        task = asyncio.get_running_loop().create_task(self._write(key_id, time.time()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, key_id: int, at: float) -> None:
        c = t.api_keys.c
        try:
            # config=False: a key's use changes nothing the read cache holds.
            async with self.database.write(config=False) as conn:
                await conn.execute(update(t.api_keys)
                                   .where(c.id == key_id,
                                          or_(c.last_used_at.is_(None), c.last_used_at < at - self.interval))
                                   .values(last_used_at=at))
        except Exception as exc:  # the use is not lost for long: the next request after the interval retries
            log.warning("key_usage_not_written", key_id=key_id, error=repr(exc)[:200])

    async def flush(self) -> None:
        """Wait for the writes in flight (on close, and in tests)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
