"""A read cache for the configuration every API request looks up: key → account, domain by name, a
domain's webhooks.

Why: each of those is a tiny indexed read, but through the async drivers one costs more than the whole
rest of a request (a thread hop per cursor call on aiosqlite; BEGIN/query/ROLLBACK round trips on
asyncpg), so a management ``GET`` spent most of its time there.

Never stale, by construction: an entry is served only while the database's *generation* is the one it
was read under, and the generation moves on every change the process could miss:

- SQLite: the ``config_generation`` row, read on a private connection, which row triggers on
  ``accounts``, ``api_keys``, ``domains`` and ``webhooks`` raise in the very transaction that changes
  them, whichever connection or process commits it (migration 0016). A read after a commit sees the new
  value at once, this process's own commits included. (On a database not yet migrated: ``PRAGMA
  data_version``, which moves on every commit of any other connection, configuration or not.)
- PostgreSQL: a ``LISTEN`` on ``mailhooks_config``, which row triggers on the same tables notify
  (migration 0004), and, because a notification arrives a moment after the commit, every write through
  this process's :class:`~mailhooks.db.database.Database` that may change configuration (bumped after
  the commit; ``write(config=False)`` for those that cannot, such as ingest). While that connection is
  down the cache is bypassed, and it starts empty when the connection comes back.

So ingest and deliveries, which change no configuration, leave the cache alone: under load a request's
key and domain are answered from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from sqlalchemy.engine import make_url

log = structlog.get_logger(__name__)

T = TypeVar("T")
# Opens a LISTEN connection on the configuration channel calling the given callback on each notification
# (``Database.listen``); raises when it cannot.
ConfigListen = Callable[[Callable[..., None]], Awaitable[Any]]
MAX_ENTRIES = 10_000
_SQLITE_GENERATION = "SELECT value FROM config_generation WHERE id = 1"
RECONNECT_SECONDS = 5.0


class ReadCache:
    """Memoizes reads keyed by their arguments while the database generation stands still."""

    def __init__(self, url: str, postgres: bool, listen: ConfigListen | None = None) -> None:
        """``listen``: how to hear of other processes' changes on PostgreSQL; without it the cache is
        bypassed there (it could not tell when an entry went stale)."""
        self.url = url
        self.postgres = postgres
        self._listen_config = listen
        self.local_generation = 0
        self._entries: dict[tuple[Any, ...], tuple[tuple[int, int], Any]] = {}
        self._sqlite: sqlite3.Connection | None = None
        self._sqlite_counter = True  # False: this database has no config_generation (yet): data_version
        self._listener: Any = None  # asyncpg connection while LISTENing
        self._remote_generation = 0
        self._next_connect = 0.0
        self._connecting = False
        self._listen_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ generation
    def changed(self) -> None:
        """This process wrote: whatever was read before is suspect."""
        self.local_generation += 1

    def _generation(self) -> tuple[int, int] | None:
        """The current generation, or ``None`` when changes elsewhere cannot be seen (cache off)."""
        if self.postgres:
            if self._listener is None or self._listener.is_closed():
                self._schedule_listen()
                return None
            return self.local_generation, self._remote_generation
        try:
            if self._sqlite is None:
                path = make_url(self.url).database or ""
                # uri=True with mode=ro: never creates the file, never takes a write lock.
                self._sqlite = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            if self._sqlite_counter:
                try:
                    counter = self._sqlite.execute(_SQLITE_GENERATION).fetchone()
                except sqlite3.OperationalError:  # not migrated yet: no such table
                    counter = None
                if counter is not None:
                    # It counts this process's commits too, so no local generation; -1 keeps these
                    # generations apart from data_version's (local >= 0) should the table ever go.
                    return -1, int(counter[0])
                self._sqlite_counter = False
            row = self._sqlite.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as exc:
            log.warning("read_cache_unavailable", error=repr(exc))
            self._close_sqlite()
            return None
        return self.local_generation, int(row[0])

    async def get(self, key: tuple[Any, ...], load: Callable[[], Awaitable[T]]) -> T:
        generation = self._generation()
        if generation is None:
            return await load()
        hit = self._entries.get(key)
        if hit is not None and hit[0] == generation:
            return hit[1]  # type: ignore[no-any-return]
        value = await load()
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (generation, value)  # read under ``generation``: void once it moves
        return value

    # ------------------------------------------------------------------ PostgreSQL LISTEN
    def _schedule_listen(self) -> None:
        if self._listen_config is None or self._connecting or time.monotonic() < self._next_connect:
            return
        try:  # keep a reference: the loop holds tasks only weakly
            self._listen_task = asyncio.get_running_loop().create_task(self._listen())
        except RuntimeError:  # no loop (a synchronous caller): stay off
            return
        self._connecting = True

    async def _listen(self) -> None:
        assert self._listen_config is not None
        self._next_connect = time.monotonic() + RECONNECT_SECONDS
        try:
            listener = await self._listen_config(self._notified)
        except Exception as exc:  # bypassed until it works: correctness never depends on the cache
            log.warning("read_cache_listen_failed", error=repr(exc))
            return
        finally:
            self._connecting = False
        self._entries.clear()  # whatever happened while nobody listened
        self._remote_generation += 1
        self._listener = listener

    def _notified(self, *_args: Any) -> None:
        self._remote_generation += 1

    # ------------------------------------------------------------------ lifecycle
    def _close_sqlite(self) -> None:
        self._sqlite_counter = True  # a new connection tries the counter again (the schema may have moved on)
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None

    async def close(self) -> None:
        self._entries.clear()
        self._close_sqlite()
        if self._listen_task is not None and not self._listen_task.done():
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listen_task
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()
        self._listener = None
