"""Shared fixtures: real databases (SQLite file and a throwaway PostgreSQL database per run), the real app
in this process (``in_process``: shapes and validation, no socket) and real ``mailhooks`` server processes
on 127.0.0.1 (``server``: what needs a dispatcher, a socket or a process of its own).

PostgreSQL tests run when 127.0.0.1:5432 answers; under ``CI=true`` a missing server fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mailhooks.config import Settings
from mailhooks.db.migrate import upgrade, upgrade_async
from mailhooks.db.store import Store
from tests.in_process import InProcessApp
from tests.support import (
    Provisioner,
    Receiver,
    ServerProcess,
    Tenant,
    create_pg_database,
    drop_pg_database,
    pg_available,
    redis_available,
)

IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ["sqlite", "postgresql"]


def require_service(available: bool, name: str) -> None:
    if available:
        return
    if IN_CI:
        pytest.fail(f"{name} is not reachable on 127.0.0.1 and CI=true: tests must not skip")
    pytest.skip(f"{name} is not reachable on 127.0.0.1")


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return os.environ.get("MAILHOOKS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def own_database(backend: str, folder: Path, pg_admin_url: str, label: str) -> Iterator[str]:
    """A fresh database of one backend for a fixture to yield from: a SQLite file in ``folder``, or a new
    PostgreSQL database named after ``label``, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'mailhooks.db'}"
        return
    require_service(pg_available(pg_admin_url), "PostgreSQL")
    name = f"mailhooks_{label}_{uuid.uuid4().hex[:12]}"
    url = create_pg_database(pg_admin_url, name)
    try:
        yield url
    finally:
        drop_pg_database(pg_admin_url, name)


def _label(request: pytest.FixtureRequest) -> str:
    """The test module's short name: names its databases and folders."""
    return str(request.module.__name__).rsplit(".", 1)[-1].removeprefix("test_")


@pytest.fixture(scope="module", params=BACKENDS)
def module_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              pg_admin_url: str) -> Iterator[str]:
    """A database of the module's own per backend, not migrated: its server's dispatcher, fuzzer or
    queue tests must not meet another module's rows, nor the session ``server``."""
    label = _label(request)
    yield from own_database(request.param, tmp_path_factory.mktemp(label), pg_admin_url, label)


@pytest.fixture()
async def store(module_db: str) -> AsyncIterator[Store]:
    """A ``Store`` on the module's own database, migrated: for the queue and store tests."""
    await upgrade_async(module_db)
    st = Store(module_db)
    yield st
    await st.close()


@pytest.fixture(params=BACKENDS)
def empty_db(request: pytest.FixtureRequest, tmp_path: Path, pg_admin_url: str) -> Iterator[str]:
    """A database of the test's own per backend that nobody has touched: not even migrated. A test that
    needs one backend only says so: ``@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)``."""
    yield from own_database(request.param, tmp_path, pg_admin_url, _label(request))


@pytest.fixture(scope="session")
def pg_url(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One fresh PostgreSQL database for this test run, dropped afterwards."""
    yield from own_database("postgresql", tmp_path_factory.getbasetemp(), pg_admin_url, "test")


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("MAILHOOKS_TEST_REDIS", "redis://127.0.0.1:6379/0")
    require_service(redis_available(url), "Redis")
    return url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "mailhooks.db"
    return f"sqlite:///{path}"


@pytest.fixture(scope="session", params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """Every storage test runs on both backends: the run's database of that backend, migrated."""
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    upgrade(url)
    return url


# The settings every test app runs with: the test receivers are local, and tests send many requests and
# wrong keys on purpose from one address (tests/test_ratelimit.py sets its own budgets).
RELAXED_LIMITS = {"rate_limit": "100000/minute", "auth_failure_limit": "1000000/minute"}


@pytest.fixture(scope="session")
def in_process(db_url: str) -> Iterator[InProcessApp]:
    """The real app (``web_app``, as ``mailhooks api`` runs it) in this process on ``db_url``, private
    targets allowed; no dispatcher. Reach it with ``in_process.client(...)``; a ``server`` on the same
    database makes the deliveries."""
    app = InProcessApp(Settings(database_url=db_url, allow_private_targets=True, **RELAXED_LIMITS)).start()
    yield app
    app.stop()


@pytest.fixture(scope="session")
def strict_in_process(db_url: str) -> Iterator[InProcessApp]:
    """The real app in this process on ``db_url`` with private targets NOT allowed (the default)."""
    app = InProcessApp(Settings(database_url=db_url, **RELAXED_LIMITS)).start()
    yield app
    app.stop()


@pytest.fixture(scope="session")
def server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real ``mailhooks serve`` on a free port, private targets allowed (the test receivers are local)."""
    proc = ServerProcess(
        db_url,
        log_dir=tmp_path_factory.mktemp("server-logs"),
        env={"MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1", "MAILHOOKS_RATE_LIMIT": "100000/minute"},
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def provision(db_url: str) -> Provisioner:
    """Creates accounts and domains straight in ``db_url`` (the same code the CLI runs), the database of both
    ``server`` and ``in_process``."""
    return Provisioner(db_url)


@pytest.fixture()
def tenant(provision: Provisioner) -> Tenant:
    """A fresh account with one domain, per test."""
    return provision.tenant()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A real local webhook receiver (tests.support.Receiver)."""
    rcv = Receiver().start()
    yield rcv
    rcv.stop()
