"""Single-event requests that arrive together share one ingest transaction (group commit,
``db/intake.py``), and each is still answered as if it had been alone.

A real ``mailhooks serve`` on each backend, a real receiver. To be sure requests are gathered, a test
holds the database's write lock from outside (SQLite: ``BEGIN IMMEDIATE`` on another connection;
PostgreSQL: ``LOCK TABLE events IN EXCLUSIVE MODE``): the first request's transaction waits on it and
every request sent meanwhile queues behind it, so they are written together once the lock is let go.
A request the database refuses is made with a real trigger that refuses one event id.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support import Provisioner, Receiver, ServerProcess, Tenant

ENV = {"MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1", "MAILHOOKS_RATE_LIMIT": "1000000/minute"}
REFUSED_ID = "refused-by-the-database"


@pytest.fixture(scope="module")
def stack(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Receiver]]:
    receiver = Receiver().start()
    server = ServerProcess(module_db, log_dir=tmp_path_factory.mktemp("group-commit"), env=ENV)
    server.start()
    asyncio.run(_refuse_one_event_id(module_db))
    yield server, receiver
    server.stop()
    receiver.stop()


async def _refuse_one_event_id(db_url: str) -> None:
    """A trigger that refuses the event ``REFUSED_ID``: a row the database will not take, for real."""
    if db_url.startswith("sqlite"):
        with sqlite3.connect(make_url(db_url).database or "") as conn:
            conn.execute(f"CREATE TRIGGER refuse_one BEFORE INSERT ON events WHEN NEW.event_id = '{REFUSED_ID}' "
                         "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END")
        return
    async with _pg(db_url) as conn:
        await conn.execute(f"""
            CREATE FUNCTION refuse_one() RETURNS trigger AS $$
            BEGIN
                IF NEW.event_id = '{REFUSED_ID}' THEN RAISE EXCEPTION 'refused by a test trigger'; END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_one BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_one();
        """)


@asynccontextmanager
async def _pg(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    url = make_url(db_url)
    conn = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                                 database=url.database)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def writes_held(db_url: str) -> AsyncIterator[None]:
    """Ingest transactions wait while this is open: the server's requests pile up behind the first."""
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(make_url(db_url).database or "", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("COMMIT")
            conn.close()
        return
    async with _pg(db_url) as pg, pg.transaction():
        await pg.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # reads go on; inserts wait
        yield


def subscribe(server: ServerProcess, tenant: Tenant, receiver: Receiver, path: str) -> None:
    response = httpx.post(f"{server.base_url}/v3/domains/{tenant.domain}/webhooks", auth=("api", tenant.api_key),
                          data={"id": "delivered", "url": receiver.url(path)})
    assert response.status_code == 200, response.text


def event(tenant: Tenant, event_id: str) -> dict[str, str]:
    return {"id": event_id, "domain": tenant.domain, "event": "delivered", "recipient": f"{event_id}@x.example"}


async def post_all(server: ServerProcess, posts: list[tuple[Tenant, dict[str, str]]], in_flight: int
                   ) -> list[httpx.Response]:
    """POST each event alone, ``in_flight`` at a time; the answers in the order of ``posts``."""
    gate = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60,
                                 limits=httpx.Limits(max_connections=in_flight)) as client:
        async def one(tenant: Tenant, body: dict[str, str]) -> httpx.Response:
            async with gate:
                return await client.post("/v1/events", json=body, headers={"Authorization": f"Bearer {tenant.api_key}"})

        return list(await asyncio.gather(*(one(tenant, body) for tenant, body in posts)))


async def post_while_held(server: ServerProcess, db_url: str, posts: list[tuple[Tenant, dict[str, str]]]
                          ) -> list[httpx.Response]:
    """Every post sent while writes are held (so that they are written together), then answered."""
    async with writes_held(db_url):
        sending = asyncio.create_task(post_all(server, posts, in_flight=len(posts)))
        await asyncio.sleep(1.5)  # all are in the server, queued behind the first one's transaction
        assert not sending.done()
    return await sending


def arrivals(receiver: Receiver, path: str, count: int) -> Counter[str]:
    receiver.wait_for(path, count, timeout=60)
    time.sleep(0.5)  # and nothing more comes: each event once
    return Counter(json.loads(r.body)["event-data"]["id"] for r in receiver.on(path))


def test_many_concurrent_single_events_are_stored_once_and_delivered(
        stack: tuple[ServerProcess, Receiver], module_db: str) -> None:
    server, receiver = stack
    provision = Provisioner(module_db)
    tenants = [provision.tenant(prefix="gc"), provision.tenant(prefix="gc")]
    paths = [f"/gc-{uuid.uuid4().hex[:6]}" for _ in tenants]
    for tenant, path in zip(tenants, paths, strict=True):
        subscribe(server, tenant, receiver, path)
    ids = [f"many-{i}" for i in range(150)]  # the same ids in both accounts: separate domains, separate events
    posts = [(tenant, event(tenant, event_id)) for event_id in ids for tenant in tenants]
    posts += posts[:60]  # re-posts, some while the first post of the same event is still being written
    answers = asyncio.run(post_all(server, posts, in_flight=48))
    for (_, body), answer in zip(posts, answers, strict=True):
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"ids": [body["id"]]}
    for path in paths:
        assert arrivals(receiver, path, len(ids)) == Counter({event_id: 1 for event_id in ids})
    for tenant in tenants:
        listed = httpx.get(f"{server.base_url}/v1/events", params={"domain": tenant.domain, "limit": 1000},
                           headers={"Authorization": f"Bearer {tenant.api_key}"}).json()["items"]
        assert sorted(item["id"] for item in listed) == sorted(ids)


def test_a_repost_gathered_with_its_first_post_is_answered_as_alone(
        stack: tuple[ServerProcess, Receiver], module_db: str) -> None:
    server, receiver = stack
    tenant = Provisioner(module_db).tenant(prefix="gc")
    path = f"/gc-{uuid.uuid4().hex[:6]}"
    subscribe(server, tenant, receiver, path)
    twice = event(tenant, "posted-twice")
    posts = [(tenant, event(tenant, "first-alone")), (tenant, twice), (tenant, event(tenant, "between")),
             (tenant, dict(twice))]
    answers = asyncio.run(post_while_held(server, module_db, posts))
    assert [(a.status_code, a.json()) for a in answers] == [(202, {"ids": [body["id"]]}) for _, body in posts]
    assert arrivals(receiver, path, 3) == Counter({"first-alone": 1, "posted-twice": 1, "between": 1})
    # and posted once more afterwards, alone: the same answer, no second delivery
    again = asyncio.run(post_all(server, [(tenant, twice)], in_flight=1))[0]
    assert (again.status_code, again.json()) == (202, {"ids": ["posted-twice"]})
    assert arrivals(receiver, path, 3)["posted-twice"] == 1


def test_a_request_the_database_refuses_fails_alone(stack: tuple[ServerProcess, Receiver], module_db: str) -> None:
    server, receiver = stack
    provision = Provisioner(module_db)
    mine, other = provision.tenant(prefix="gc"), provision.tenant(prefix="gc")
    paths = {mine.username: f"/gc-{uuid.uuid4().hex[:6]}", other.username: f"/gc-{uuid.uuid4().hex[:6]}"}
    for tenant in (mine, other):
        subscribe(server, tenant, receiver, paths[tenant.username])
    posts = [(mine, event(mine, "ahead"))]
    posts += [(tenant, event(tenant, f"fine-{i}")) for i in range(10) for tenant in (mine, other)]
    posts.insert(8, (mine, event(mine, REFUSED_ID)))
    answers = asyncio.run(post_while_held(server, module_db, posts))
    for (_, body), answer in zip(posts, answers, strict=True):
        if body["id"] == REFUSED_ID:
            assert answer.status_code == 500, answer.text  # as it is answered when posted alone
        else:
            assert (answer.status_code, answer.json()) == (202, {"ids": [body["id"]]})
    assert arrivals(receiver, paths[other.username], 10) == Counter({f"fine-{i}": 1 for i in range(10)})
    assert arrivals(receiver, paths[mine.username], 11) == Counter({"ahead": 1, **{f"fine-{i}": 1 for i in range(10)}})
    alone = asyncio.run(post_all(server, [(mine, event(mine, REFUSED_ID))], in_flight=1))[0]
    assert (alone.status_code, alone.content) == (answers[8].status_code, answers[8].content)
