"""Engine construction: turn the user's database URL into an async SQLAlchemy engine, with deadlines on
every PostgreSQL call and a pool that does not hand out connections the server has closed; and what
counts as "the database is unavailable" (as opposed to a bug), for the API to answer 503."""

from __future__ import annotations

import sqlite3
import traceback
from typing import Any, Literal

import asyncpg
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mailhooks.config import Settings

# Deadlines (seconds) for PostgreSQL: opening a connection (at most 5 s), any one statement and the wait
# for a pooled connection (MAILHOOKS_DATABASE_TIMEOUT, 30 s). A database that hangs turns into an error
# within these instead of a request that never ends (SQLite has its busy_timeout).
CONNECT_TIMEOUT = 5.0


def to_async_url(url: str) -> str:
    """Map ``sqlite:///…`` to aiosqlite and ``postgresql://…`` to asyncpg; leave explicit drivers alone."""
    parsed = make_url(url)
    driver = parsed.drivername
    if driver in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif driver in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


# Every SQLite connection (the pooled ones and the queue's own, ``Database.hot_write``). WAL lets readers
# (API) and the writer (dispatcher) work at once; busy_timeout makes writers from other processes wait
# instead of failing with "database is locked".
SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA busy_timeout=30000",
                  "PRAGMA foreign_keys=ON")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _discard_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout: a connection the server closed (restart, failover, idle kill) is replaced before
    anyone uses it. asyncpg notices the server's goodbye as it arrives, so this costs no round trip,
    unlike ``pool_pre_ping`` (a ``SELECT`` per checkout: +100 us on loopback, a network round trip
    elsewhere, on every statement of the delivery hot path)."""
    if dbapi_connection.driver_connection.is_closed():
        raise sa_exc.DisconnectionError("the server closed this pooled connection")


def _configured_timeout() -> float:
    # Read here rather than passed down, so that every engine of every process (API, dispatcher, CLI)
    # has the operator's deadline.
    return Settings.from_env().database_timeout


def create_engine(url: str, statement_timeout: float | None | Literal["configured"] = "configured",
                  **kwargs: Any) -> AsyncEngine:
    """``statement_timeout``: seconds, ``None`` for work that may legitimately run long (migrations), or
    by default ``MAILHOOKS_DATABASE_TIMEOUT``."""
    async_url = to_async_url(url)
    if async_url.startswith("sqlite"):
        engine = create_async_engine(async_url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", False)
    configured = _configured_timeout()
    if statement_timeout == "configured":
        statement_timeout = configured
    kwargs.setdefault("pool_timeout", configured)  # waiting for a free pooled connection
    connect_args = {"timeout": min(CONNECT_TIMEOUT, configured), "command_timeout": statement_timeout,
                    **kwargs.pop("connect_args", {})}
    engine = create_async_engine(async_url, connect_args=connect_args, **kwargs)
    event.listen(engine.sync_engine, "checkout", _discard_closed)
    return engine


# Server-side conditions that mean "not now" rather than "this request (or this row) is wrong": the
# connection is gone, shutdown or recovery in progress, out of connections or resources, a statement cut
# off by a timeout, a deadlock or serialization failure, a lock not available, a read-only standby
# during failover. The same write may pass when tried again later.
_PG_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, starting up, statement cancelled (class 57)
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk or memory full (class 53)
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialization failure (class 40)
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)
# SQLite's OperationalError covers both "busy now" and "no such table": only the former are "not now".
_SQLITE_UNAVAILABLE = ("locked", "busy", "disk i/o error", "readonly", "database or disk is full", "unable to open")
# The exception classes under which such an error can reach the API (for its exception handlers).
ERROR_TYPES: tuple[type[Exception], ...] = (
    sa_exc.DBAPIError, sa_exc.TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
    sqlite3.OperationalError,
)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (SQLAlchemy's ``orig``, then ``__cause__``), nearest first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8 and not any(current is seen for seen in chain):
        chain.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return chain


_DRIVER_PATHS = ("/sqlalchemy/", "/asyncpg/", "/aiosqlite/")


def _raised_by_driver(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside the database client stack (SQLAlchemy, asyncpg, aiosqlite)
    rather than by code of ours that happens to run in a request."""
    return any(part in frame.f_code.co_filename
               for frame, _line in traceback.walk_tb(exc.__traceback__) for part in _DRIVER_PATHS)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be reached or cannot serve right now (connection
    refused, reset or closed, a deadline passed, shutdown or recovery in progress, SQLite locked),
    rather than a fault of the request, of the data or of our code.

    One rule for every caller: the API answers these with 503 instead of 500; the dispatcher's result
    writer retries the whole batch later instead of splitting it in search of a row the database refuses.
    """
    for cause in _causes(exc):
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, (sa_exc.TimeoutError, sa_exc.DisconnectionError, *_PG_UNAVAILABLE)):
            return True
        # Connecting raises the socket error itself (refused, unreachable, timed out): it counts when it
        # came out of the database client, not when some other code of ours raised it.
        if isinstance(cause, OSError) and _raised_by_driver(cause):
            return True
        if isinstance(cause, asyncpg.InterfaceError) and "connection is closed" in str(cause):
            return True
        if isinstance(cause, sqlite3.OperationalError) and any(
                part in str(cause).lower() for part in _SQLITE_UNAVAILABLE):
            return True
    return False
