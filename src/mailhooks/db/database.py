"""The database itself: engines, transactions, raw driver access and LISTEN/NOTIFY, for every storage
module (configuration, intake, the delivery queue, the reads) to build on.

SQLite gets two engines: writes open ``BEGIN IMMEDIATE`` so that two processes never deadlock on a
lock upgrade, while reads stay deferred and run beside them (WAL). Writes of one process queue on an
``asyncio.Lock`` first (SQLite has one writer at a time anyway). PostgreSQL has one pooled engine.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import aiosqlite
import asyncpg
from sqlalchemy import Table, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mailhooks.db.cache import ReadCache
from mailhooks.db.engine import SQLITE_PRAGMAS, create_engine, is_postgres

# NOTIFY channels (PostgreSQL). Ingest, a manual retry and a recovery notify the deliveries channel (the
# dispatchers LISTEN); statement triggers on the configuration tables notify the config channel (migration
# 0004; the API's read cache LISTENs).
DELIVERIES_CHANNEL = "mailhooks_deliveries"
CONFIG_CHANNEL = "mailhooks_config"
LISTEN_TIMEOUT = 5.0  # seconds to open a LISTEN connection


def _immediate_transactions(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """Engines and transactions for one database URL; call ``close()`` when done.

    ``cache=True`` (the API server) keeps a read cache of configuration (``cache.py``) that every write
    through this object invalidates.
    """

    def __init__(self, url: str, cache: bool = False) -> None:
        self.url = url
        self.postgres = is_postgres(url)
        self.cache = ReadCache(url, self.postgres, partial(self.listen, CONFIG_CHANNEL)) if cache else None
        self.engine = create_engine(url)
        if self.postgres:
            self.read_engine = self.engine
        else:
            _immediate_transactions(self.engine)
            self.read_engine = create_engine(url)
        self._write_lock: asyncio.Lock | None = None if self.postgres else asyncio.Lock()
        self._hot: aiosqlite.Connection | None = None  # SQLite: the hot paths' own connection (hot_write)
        database = make_url(url).database
        self._hot_path = None if self.postgres or not database or database == ":memory:" else database

    async def close(self) -> None:
        if self.cache is not None:
            await self.cache.close()
        await self._drop_hot()
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()

    # ------------------------------------------------------------------ transactions
    @asynccontextmanager
    async def write(self, config: bool = True) -> AsyncIterator[AsyncConnection]:
        """One write transaction (committed on exit, rolled back on an exception). ``config=False``: it
        changes nothing the read cache holds, which therefore stays."""
        try:
            if self._write_lock is None:
                async with self.engine.begin() as conn:
                    yield conn
                return
            # SQLite has one writer at a time anyway; queueing in-process is far cheaper than letting
            # pooled connections collide on the file lock and sleep in the busy handler.
            async with self._write_lock, self.engine.begin() as conn:
                yield conn
        finally:
            if self.cache is not None and config:
                self.cache.changed()  # after the commit (or rollback): a read from now on sees it

    @property
    def has_hot_writes(self) -> bool:
        """Whether ``hot_write`` is available (a SQLite file)."""
        return self._hot_path is not None

    @asynccontextmanager
    async def hot_write(self) -> AsyncIterator[aiosqlite.Connection]:
        """SQLite files: one write transaction on a connection of its own, driven with the driver's calls
        (``BEGIN IMMEDIATE`` … ``COMMIT``), for the delivery queue's claims and result writes.

        Measured on this machine: about 110 us of CPU per transaction, against about 600 us through
        SQLAlchemy's pooled ``write()`` (pool checkout and return, the ``begin`` event, the commit and the
        reset on return each cost a thread hop and Python around it). It queues on the same in-process
        write lock as ``write()``. It changes nothing the read cache holds unless the caller says so
        (``config_changed``). A connection that fails to roll back is dropped and opened anew next time.
        """
        if self._write_lock is None or self._hot_path is None:
            raise RuntimeError("hot_write is for SQLite files")
        async with self._write_lock:
            conn = self._hot
            if conn is None:
                conn = self._hot = await self._open_hot(self._hot_path)
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                await conn.execute("COMMIT")
            except BaseException:
                try:
                    await conn.execute("ROLLBACK")
                except BaseException:
                    await self._drop_hot()
                raise

    def config_changed(self) -> None:
        """A hot write changed configuration (a webhook's health): the read cache drops what it holds."""
        if self.cache is not None:
            self.cache.changed()

    @staticmethod
    async def _open_hot(path: str) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            for pragma in SQLITE_PRAGMAS:
                await conn.execute(pragma)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _drop_hot(self) -> None:
        conn, self._hot = self._hot, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.read_engine.connect() as conn:
            yield conn

    def insert(self, table: Table) -> Any:
        """This backend's ``INSERT`` with ``ON CONFLICT`` support (``.on_conflict_do_nothing(…)``)."""
        return (pg_insert if self.postgres else sqlite_insert)(table)

    # ------------------------------------------------------------------ raw driver access
    @staticmethod
    async def driver(conn: AsyncConnection) -> Any:
        """The driver's own connection under ``conn`` (aiosqlite or asyncpg), inside its transaction: for
        hot paths that skip SQLAlchemy's compilation and result processing."""
        return (await conn.get_raw_connection()).driver_connection

    @asynccontextmanager
    async def raw(self) -> AsyncIterator[Any]:
        """PostgreSQL: a pooled connection's asyncpg connection, outside any SQLAlchemy transaction
        (autocommit: each statement its own implicit transaction, one round trip).

        Anything but a server-side error (a lost connection, a cancelled statement) invalidates the
        connection, so the pool does not hand it out again.
        """
        async with self.engine.connect() as conn:
            raw: Any = await self.driver(conn)
            try:
                yield raw
            except BaseException as exc:
                if not isinstance(exc, asyncpg.PostgresError) or raw.is_closed():
                    await conn.invalidate()
                raise

    # ------------------------------------------------------------------ LISTEN / NOTIFY
    async def notify(self, conn: AsyncConnection, channel: str = DELIVERIES_CHANNEL) -> None:
        """Tell ``channel``'s listeners, when ``conn``'s transaction commits, that something changed.

        PostgreSQL only: on SQLite nobody listens (processes poll, and ``serve`` wakes its own
        dispatcher in-process)."""
        if self.postgres:
            await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})

    async def listen(self, channel: str, callback: Callable[..., None],
                     connect_timeout: float = LISTEN_TIMEOUT) -> Any:
        """A dedicated asyncpg connection (outside the pool) LISTENing on ``channel``, which calls
        ``callback`` on each notification. Raises when it cannot be set up; the caller closes it, and
        watches ``is_closed()`` to know when to listen again."""
        dsn = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        listener = await asyncpg.connect(dsn, timeout=connect_timeout)
        try:
            await listener.add_listener(channel, callback)
        except BaseException:
            listener.terminate()
            raise
        return listener
