"""Apply Alembic migrations programmatically (``mailhooks db upgrade`` and every ``serve``/``api``/``worker``).

Processes of one deployment often start together on a fresh database. On PostgreSQL each upgrade first
takes a transaction-level advisory lock, so one process migrates while the others wait, then find the
schema at head and do nothing (without it, two ``CREATE TABLE alembic_version`` collide and a process
dies). The migration runs in that same transaction: the lock goes with its commit or rollback.
On SQLite (whose driver commits DDL as it goes, so two upgrades interleave) the processes take an
exclusive ``flock`` on a file beside the database instead.
"""

from __future__ import annotations

import asyncio
import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url

from mailhooks.db.engine import create_engine, is_postgres

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# pg_advisory_xact_lock key: the bytes of "mailhook" as a bigint (any constant would do; this one
# is recognisable in pg_locks).
MIGRATION_LOCK = int.from_bytes(b"mailhook", "big")
# How long a process waits for another one's migration before giving up (then it exits with the error).
LOCK_WAIT_SECONDS = 600


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _alembic_upgrade(connection: Any, url: str, revision: str) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = connection  # migrations/env.py runs on it, inside our transaction
    command.upgrade(config, revision)


async def _upgrade(url: str, revision: str) -> None:
    # No statement deadline: a migration may rewrite a large table.
    engine = create_engine(url, statement_timeout=None)
    try:
        async with engine.connect() as conn:
            if is_postgres(url):
                await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_WAIT_SECONDS}s'"))
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                await conn.execute(text("SET LOCAL lock_timeout = DEFAULT"))
            await conn.run_sync(_alembic_upgrade, url, revision)
            await conn.commit()
    finally:
        await engine.dispose()


@contextmanager
def _sqlite_lock(url: str) -> Iterator[None]:
    database = make_url(url).database
    if is_postgres(url) or not database or database == ":memory:":
        yield
        return
    # A file of its own: closing a descriptor of the database file itself would drop SQLite's locks.
    with Path(f"{database}-migrate.lock").open("a") as lock:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another process has been migrating {database} for too long") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade(url: str, revision: str = "head") -> None:
    """Blocking: run outside the event loop (it starts its own)."""
    with _sqlite_lock(url):
        asyncio.run(_upgrade(url, revision))


async def upgrade_async(url: str) -> None:
    await asyncio.to_thread(upgrade, url)
