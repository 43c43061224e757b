"""The API's read cache (src/mailhooks/db/cache.py) never serves what another process has changed.

Two real server processes share one database; every answer of one is checked right after the other
(or the database itself, as the CLI would) changed something that the first had just read and cached.
SQLite sees other processes' changes through the trigger-kept ``config_generation`` at once; PostgreSQL through the
``mailhooks_config`` notifications, which reach the listener within milliseconds — so there the check
allows a short bounded wait, and still fails if the cache never lets go.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from mailhooks.core.accounts import KEY_PREFIX_LENGTH, hash_key
from mailhooks.db.store import Store
from tests.support import ServerProcess, Tenant

A = "https://a.example/hook"
B = "https://b.example/hook"


@pytest.fixture(scope="module")
def pair(db_url: str, server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two ``mailhooks api`` on the same database as ``server``: API only, so that no dispatcher's own
    writes empty their caches by the way and only the invalidation under test can."""
    procs = [ServerProcess(db_url, log_dir=tmp_path_factory.mktemp("pair"), command="api",
                           env={"MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1", "MAILHOOKS_RATE_LIMIT": "100000/minute"})
             for _ in range(2)]
    for proc in procs:
        proc.start()
    yield procs[0], procs[1]
    for proc in procs:
        proc.stop()


def soon(db_url: str, check: Callable[[], bool]) -> bool:
    """SQLite: true at once. PostgreSQL: true within 0.5 s (the notification's trip)."""
    deadline = time.monotonic() + (0.5 if db_url.startswith("postgresql") else 0.0)
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def test_webhook_changes_in_another_process_are_seen(pair: tuple[ServerProcess, ServerProcess],
                                                     tenant: Tenant, db_url: str) -> None:
    path = f"/v3/domains/{tenant.domain}/webhooks"
    auth = ("api", tenant.api_key)
    with httpx.Client(base_url=pair[0].base_url, auth=auth) as one, \
            httpx.Client(base_url=pair[1].base_url, auth=auth) as two:
        for _ in range(3):  # read (and cache) it in the first process
            assert one.get(path).json() == {"webhooks": {}}
        assert two.post(path, data={"id": "clicked", "url": A}).status_code == 200
        assert soon(db_url, lambda: one.get(path).json() == {"webhooks": {"clicked": {"urls": [A]}}})
        assert two.put(f"{path}/clicked", data={"url": B}).status_code == 200
        assert soon(db_url, lambda: one.get(f"{path}/clicked").json() == {"webhook": {"urls": [B]}})
        assert two.delete(f"{path}/clicked").status_code == 200
        assert soon(db_url, lambda: one.get(f"{path}/clicked").status_code == 404)
        # and in the other direction, within one process: read-after-write is exact on both backends
        assert one.post(path, data={"id": "opened", "url": A}).status_code == 200
        assert one.get(path).json() == {"webhooks": {"opened": {"urls": [A]}}}


def test_a_key_revoked_elsewhere_stops_working(pair: tuple[ServerProcess, ServerProcess], tenant: Tenant,
                                               db_url: str) -> None:
    path = f"/v3/domains/{tenant.domain}/webhooks"
    with httpx.Client(base_url=pair[0].base_url, auth=("api", tenant.api_key)) as client:
        for _ in range(3):
            assert client.get(path).status_code == 200

        async def revoke() -> None:  # what `mailhooks keys revoke` does, from this (another) process
            store = Store(db_url)
            try:
                found = await store.find_key(hash_key(tenant.api_key))
                assert found is not None
                prefix = tenant.api_key[:KEY_PREFIX_LENGTH]
                assert await store.revoke_api_key(prefix, found[0].id) == 1, "prefix is not the stored one"
            finally:
                await store.close()

        asyncio.run(revoke())
        assert soon(db_url, lambda: client.get(path).status_code == 401)


def test_sqlite_cache_never_creates_or_locks_the_file(tmp_path: Path) -> None:
    """The cache's private connection is read-only: pointing it at a missing file creates nothing."""
    from mailhooks.db.cache import ReadCache

    missing = tmp_path / "nothing-here.db"
    cache = ReadCache(f"sqlite:///{missing}", postgres=False)

    async def read() -> int:
        return await cache.get(("k",), _one)

    assert asyncio.run(read()) == 1  # bypassed, answered from the loader
    assert not missing.exists()


async def _one() -> int:
    return 1


def test_sqlite_cache_outlives_writes_that_change_no_configuration(tmp_path: Path) -> None:
    """Events, deliveries and any other table's commits leave a cached entry alone (a busy server keeps
    answering keys from memory); a change to a configuration table, by any connection, drops it."""
    import sqlite3

    from mailhooks.db.cache import ReadCache
    from mailhooks.db.migrate import upgrade_async

    url = f"sqlite:///{tmp_path / 'cache.db'}"
    asyncio.run(upgrade_async(url))
    loads: list[int] = []

    async def load() -> int:
        loads.append(1)
        return len(loads)

    async def scenario() -> list[int]:
        cache = ReadCache(url, postgres=False)
        other = sqlite3.connect(tmp_path / "cache.db", isolation_level=None)  # another process, as it were
        try:
            seen = [await cache.get(("k",), load), await cache.get(("k",), load)]
            other.execute("INSERT INTO instance_secrets (name, value, created_at) VALUES ('unrelated', 'x', 0)")
            cache.changed()  # a write of this process: nothing the counter saw
            seen.append(await cache.get(("k",), load))
            other.execute("INSERT INTO accounts (guid, username, signing_key, created_at) "
                          "VALUES ('g', 'someone', 'key', 0)")
            seen.append(await cache.get(("k",), load))
            other.execute("UPDATE accounts SET signing_key = 'other' WHERE username = 'someone'")
            seen.append(await cache.get(("k",), load))
            other.execute("DELETE FROM accounts WHERE username = 'someone'")
            seen.append(await cache.get(("k",), load))
            return seen
        finally:
            other.close()
            await cache.close()

    assert asyncio.run(scenario()) == [1, 1, 1, 2, 3, 4]
