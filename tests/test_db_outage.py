"""A PostgreSQL outage under load: a cluster of the test's own is stopped (``immediate``, like a crash) while
events are being ingested and delivered, then started again.

What a user must see: while it is down, every dialect answers 503 with ``Retry-After`` in its own shape
(the dashboard a page), never a 500 nor a dropped connection; once it is back, the very first requests
succeed (no stale pooled connection fails once more); and every event that was acknowledged (202) is
delivered (at least once: duplicates are counted, not failed on).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import require_service
from tests.faults import pgcluster
from tests.faults.pgcluster import PgCluster
from tests.support import Provisioner, Receiver, ServerProcess, Tenant

HOOK = "/outage"
MESSAGE = "The service is temporarily unavailable (its database cannot be reached). Try again shortly."


@pytest.fixture()
def cluster() -> Iterator[PgCluster]:
    require_service(pgcluster.available(), "PostgreSQL server binaries (initdb, pg_ctl)")
    own = PgCluster().start()
    try:
        yield own
    finally:
        own.destroy()


@dataclass
class Ingest:
    """Posts single events with its own ids, each until acknowledged, from a thread; records what it saw."""

    base_url: str
    tenant: Tenant
    acknowledged: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # anything that is not an HTTP answer
    bad_answers: list[str] = field(default_factory=list)  # answers other than 202, or 503 done right
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.tenant.api_key}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=10) as client:
            number = 0
            while not self.stop.is_set():
                event_id = f"out-{number}"
                body = {"id": event_id, "domain": self.tenant.domain, "event": "delivered",
                        "recipient": f"r{number}@example.org"}
                try:
                    r = client.post("/v1/events", json=body)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    time.sleep(0.05)
                    continue
                self.statuses[r.status_code] += 1
                if r.status_code == 202:
                    assert r.json() == {"ids": [event_id]}
                    self.acknowledged.append(event_id)
                    number += 1
                    time.sleep(0.005)
                    continue
                if r.status_code != 503 or r.headers.get("retry-after") != "5" or r.json() != {"message": MESSAGE}:
                    self.bad_answers.append(f"{r.status_code} {r.headers} {r.text[:200]}")
                time.sleep(0.05)  # the same id again: ingest is idempotent on it


def _ui_session(base_url: str, key: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=10)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
    assert token is not None
    signed_in = client.post("/ui/login", data={"csrf": token.group(1), "api_key": key, "next": "/ui"})
    assert signed_in.status_code == 303, signed_in.text
    return client


def _dialect_calls(base_url: str, t: Tenant, ui: httpx.Client) -> dict[str, tuple[httpx.Client, str]]:
    return {
        "mailgun": (httpx.Client(base_url=base_url, auth=("api", t.api_key), timeout=10),
                    f"/v3/domains/{t.domain}/webhooks"),
        "kirim": (httpx.Client(base_url=base_url, auth=(t.username, t.api_key), timeout=10),
                  f"/api/domains/{t.domain}/webhooks"),
        "native": (httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {t.api_key}"}, timeout=10),
                   "/v1/deliveries?limit=1"),
        "ui": (ui, "/ui/deliveries"),
    }


def _assert_unavailable(dialect: str, r: httpx.Response) -> None:
    assert r.status_code == 503, (dialect, r.status_code, r.text[:300])
    assert r.headers["retry-after"] == "5", dialect
    if dialect == "mailgun":
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        assert r.content == b'{"message":"%s"}\n' % MESSAGE.encode()
    elif dialect == "kirim":
        assert r.json() == {"success": False, "message": MESSAGE}
    elif dialect == "native":
        assert r.json() == {"message": MESSAGE}
    else:
        assert r.headers["content-type"].startswith("text/html")
        assert "The database cannot be reached right now" in r.text


def test_a_postgresql_outage_under_load_answers_503_then_recovers_and_loses_nothing(
        cluster: PgCluster, tmp_path: Path) -> None:
    url = cluster.create_database("mailhooks")
    receiver = Receiver().start()
    server = ServerProcess(url, log_dir=tmp_path, env={
        "MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1", "MAILHOOKS_REDIS_URL": "",
        # a claim whose outcome could not be written comes back soon, and failed attempts retry soon
        "MAILHOOKS_LEASE_SECONDS": "5", "MAILHOOKS_RETRY_SCHEDULE": "1,1,1,1,1,1", "MAILHOOKS_POLL_INTERVAL": "0.2"})
    server.start()
    ingest: Ingest | None = None
    calls: dict[str, tuple[httpx.Client, str]] = {}
    try:
        t = Provisioner(url).tenant(prefix="outage")
        with httpx.Client(base_url=server.base_url, auth=("api", t.api_key), timeout=10) as mg:
            created = mg.post(f"/v3/domains/{t.domain}/webhooks", data={"id": "delivered", "url": receiver.url(HOOK)})
            assert created.status_code == 200, created.text
        calls = _dialect_calls(server.base_url, t, _ui_session(server.base_url, t.api_key))
        for dialect, (client, path) in calls.items():
            assert client.get(path).status_code == 200, dialect

        ingest = Ingest(server.base_url, t)
        pump = threading.Thread(target=ingest.run, daemon=True)
        pump.start()
        time.sleep(2)
        acknowledged_before = len(ingest.acknowledged)
        assert acknowledged_before > 20, ingest.statuses

        cluster.stop("immediate")
        outage_started = time.monotonic()
        time.sleep(0.5)
        for _ in range(2):  # each dialect, twice: the pooled connections and the new ones that fail
            for dialect, (client, path) in calls.items():
                started = time.monotonic()
                _assert_unavailable(dialect, client.get(path))
                assert time.monotonic() - started < 2, dialect
        health = httpx.get(f"{server.base_url}/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["database"].startswith("error"), health.text
        time.sleep(max(0.0, 3 - (time.monotonic() - outage_started)))
        refused_during_outage = ingest.statuses[503]

        cluster.start()
        # the very first request of each dialect after the restart succeeds
        for dialect, (client, path) in calls.items():
            r = client.get(path)
            assert r.status_code == 200, (dialect, r.status_code, r.text[:300])
        time.sleep(2)
        ingest.stop.set()
        pump.join(timeout=15)

        assert ingest.failures == [], ingest.failures[:5]  # no reset or dropped connection, ever
        assert ingest.bad_answers == [], ingest.bad_answers[:5]  # no 500; each 503 in the native shape
        assert refused_during_outage > 0 and set(ingest.statuses) == {202, 503}, ingest.statuses
        assert len(ingest.acknowledged) > acknowledged_before + 20, "ingest did not resume"

        # every acknowledged event reaches the receiver (at least once)
        wanted = set(ingest.acknowledged)
        deadline = time.monotonic() + 30
        while True:
            seen = Counter(orjson.loads(r.body)["event-data"]["id"] for r in receiver.on(HOOK))
            lost = wanted - set(seen)
            if not lost or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        duplicates = sum(n - 1 for n in seen.values())
        print(f"\nacknowledged={len(wanted)} delivered={len(wanted & set(seen))} duplicates={duplicates} "
              f"lost={len(lost)} refused_with_503={ingest.statuses[503]}")
        assert not lost, f"{len(lost)} acknowledged events never delivered, e.g. {sorted(lost)[:5]}"
        assert "unhandled_error" not in server.logs()
    finally:
        if ingest is not None:
            ingest.stop.set()
        for client, _ in calls.values():
            client.close()
        server.stop()
        receiver.stop()


def test_after_a_restart_nobody_saw_no_request_gets_a_dead_pooled_connection(
        cluster: PgCluster, tmp_path: Path) -> None:
    """PostgreSQL restarts between two requests (a failover, a maintenance restart): the connections
    pooled before it are dead. None of them may be handed to a request, nor to the dispatcher."""
    from concurrent.futures import ThreadPoolExecutor

    url = cluster.create_database("mailhooks")
    server = ServerProcess(url, log_dir=tmp_path, env={"MAILHOOKS_REDIS_URL": "", "MAILHOOKS_POLL_INTERVAL": "0.1"})
    server.start()
    calls: dict[str, tuple[httpx.Client, str]] = {}
    try:
        t = Provisioner(url).tenant(prefix="restart")
        calls = _dialect_calls(server.base_url, t, _ui_session(server.base_url, t.api_key))
        order = ["native", "ui", "kirim", "mailgun"]

        def burst() -> list[int]:  # enough requests at once to fill the pool with several connections
            with ThreadPoolExecutor(8) as pool:
                return list(pool.map(lambda i: calls[order[i % 4]][0].get(calls[order[i % 4]][1]).status_code,
                                     range(40)))

        assert set(burst()) == {200}
        modes: tuple[pgcluster.StopMode, ...] = ("fast", "immediate")
        for mode in modes:
            cluster.stop(mode)
            cluster.start()
            for dialect in order:  # the first request of each dialect after the restart
                client, path = calls[dialect]
                r = client.get(path)
                assert r.status_code == 200, (mode, dialect, r.status_code, r.text[:300])
            assert set(burst()) == {200}, mode
        time.sleep(0.5)
        assert "connection is closed" not in server.logs()
        assert "unhandled_error" not in server.logs()
    finally:
        for client, _ in calls.values():
            client.close()
        server.stop()


def test_a_hung_postgresql_costs_a_request_its_deadline_not_forever(cluster: PgCluster, tmp_path: Path) -> None:
    """Every server process SIGSTOPped (a storage stall, a frozen VM): connections stay open and nothing
    answers. Requests that need the database answer 503 once MAILHOOKS_DATABASE_TIMEOUT has passed;
    after the thaw everything works again."""
    url = cluster.create_database("mailhooks")
    server = ServerProcess(url, log_dir=tmp_path, env={"MAILHOOKS_REDIS_URL": "", "MAILHOOKS_DATABASE_TIMEOUT": "1.5"})
    server.start()
    calls: dict[str, tuple[httpx.Client, str]] = {}
    try:
        t = Provisioner(url).tenant(prefix="hung")
        calls = _dialect_calls(server.base_url, t, _ui_session(server.base_url, t.api_key))
        for dialect, (client, path) in calls.items():
            assert client.get(path).status_code == 200, dialect

        cluster.freeze()
        try:
            for dialect, (client, path) in calls.items():
                started = time.monotonic()
                r = client.get(path, timeout=20)
                took = time.monotonic() - started
                assert took < 6, (dialect, took)
                # the Mailgun and Kirim lists may be served by the read cache (its LISTEN connection looks
                # alive); deliveries and the dashboard page read the database
                if dialect in ("native", "ui") or r.status_code != 200:
                    _assert_unavailable(dialect, r)
            started = time.monotonic()
            r = calls["native"][0].post("/v1/events", json={"domain": t.domain, "event": "opened",
                                                            "recipient": "bob@example.org"}, timeout=20)
            assert time.monotonic() - started < 6
            _assert_unavailable("native", r)
            started = time.monotonic()
            health = httpx.get(f"{server.base_url}/healthz", timeout=20)
            assert health.status_code == 503 and time.monotonic() - started < 6, health.text
        finally:
            cluster.thaw()

        deadline = time.monotonic() + 10
        for dialect, (client, path) in calls.items():
            while (r := client.get(path)).status_code != 200:
                assert time.monotonic() < deadline, (dialect, r.status_code, r.text[:300])
                time.sleep(0.2)
        assert "unhandled_error" not in server.logs()
    finally:
        for client, _ in calls.values():
            client.close()
        server.stop()
