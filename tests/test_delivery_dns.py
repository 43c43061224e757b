"""Send-time DNS, against a real resolver we control (tests/faults/dns.py): ``mailhooks serve`` runs in a
private mount namespace whose /etc/resolv.conf names only a stub DNS server on 127.x.y.z:53, so no query
leaves the machine. Names are under ``.test`` and resolve to 127.0.0.1, where the receiver listens.

- a resolver that fails for a while and then recovers: deliveries are retried and succeed, none fails;
- a slow resolver under thousands of deliveries: none fails, and the stub sees a handful of queries
  (answers are cached, concurrent lookups of one name shared);
- a name that resolves to a refused address (default policy) is ``failed`` after one attempt;
- the lookup deadline counts the lookup itself, not the wait for a free lookup thread.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_service
from tests.faults.dns import StubDNS
from tests.support import Provisioner, Receiver, ServerProcess, Tenant
from tests.test_delivery_ssrf import _insert_webhook


def _namespaces_available() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def stub() -> Iterator[StubDNS]:
    require_service(_namespaces_available(), "root with unshare (a private mount namespace for the stub resolver)")
    dns = StubDNS().start()
    yield dns
    dns.stop()


@pytest.fixture(autouse=True)
def _healthy_stub(stub: StubDNS) -> Iterator[None]:
    stub.recover()
    yield
    stub.recover()


def _server(stub: StubDNS, folder: Path, env: dict[str, str]) -> ServerProcess:
    proc = ServerProcess(f"sqlite:///{folder / 'mailhooks.db'}", log_dir=folder, argv_prefix=stub.namespace_argv(),
                         env={"MAILHOOKS_RATE_LIMIT": "100000/minute", "MAILHOOKS_POLL_INTERVAL": "0.1",
                              "MAILHOOKS_ALLOW_PRIVATE_TARGETS": "0", **env})
    proc.start()
    return proc


@pytest.fixture(scope="module")
def lab(stub: StubDNS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Loopback allowed (the receiver is on 127.0.0.1), retries one second apart."""
    proc = _server(stub, tmp_path_factory.mktemp("dns-lab"),
                   {"MAILHOOKS_ALLOWED_CIDRS": "127.0.0.0/8", "MAILHOOKS_RETRY_SCHEDULE": "1,1,1,1,1,1"})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def strict_lab(stub: StubDNS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The default policy: loopback refused."""
    proc = _server(stub, tmp_path_factory.mktemp("dns-strict"), {"MAILHOOKS_RETRY_SCHEDULE": "1,1,1"})
    yield proc
    proc.stop()


def _name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}.test"


def _subscribe(server: ServerProcess, tenant: Tenant, event_type: str, *urls: str) -> None:
    r = httpx.post(f"{server.base_url}/v3/domains/{tenant.domain}/webhooks", auth=("api", tenant.api_key),
                   data={"id": event_type, "url": list(urls)})
    assert r.status_code == 200, r.text


def _ingest(server: ServerProcess, tenant: Tenant, events: list[str]) -> None:
    for start in range(0, len(events), 1000):
        batch = [{"domain": tenant.domain, "event": e, "recipient": f"r{start + i}@example.org"}
                 for i, e in enumerate(events[start:start + 1000])]
        r = httpx.post(f"{server.base_url}/v1/events", headers={"Authorization": f"Bearer {tenant.api_key}"},
                       json=batch, timeout=60)
        assert r.status_code == 202, r.text


def _statuses(server: ServerProcess, tenant: Tenant) -> dict[str, int]:
    with sqlite3.connect(server.db_url.removeprefix("sqlite:///")) as db:
        rows = db.execute(
            "SELECT d.status, count(*) FROM deliveries d JOIN domains m ON m.id = d.domain_id "
            "WHERE m.name = ? GROUP BY d.status", (tenant.domain,)).fetchall()
    return {str(status): int(n) for status, n in rows}


def _errors(server: ServerProcess, tenant: Tenant) -> list[tuple[str, int, str | None]]:
    with sqlite3.connect(server.db_url.removeprefix("sqlite:///")) as db:
        rows = db.execute(
            "SELECT d.status, d.attempts, d.last_error FROM deliveries d JOIN domains m ON m.id = d.domain_id "
            "WHERE m.name = ?", (tenant.domain,)).fetchall()
    return [(str(s), int(a), e) for s, a, e in rows]


def _wait_finished(server: ServerProcess, tenant: Tenant, total: int, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = _statuses(server, tenant)
        if sum(counts.get(s, 0) for s in ("succeeded", "failed", "rejected")) >= total:
            break
        time.sleep(0.2)
    return counts


def test_a_resolver_that_fails_then_recovers_delays_deliveries_and_loses_none(
        lab: ServerProcess, stub: StubDNS, receiver: Receiver) -> None:
    tenant = Provisioner(lab.db_url).tenant()
    name = _name("flaky")
    stub.answer(name, "127.0.0.1")
    stub.fail("SERVFAIL")
    _subscribe(lab, tenant, "delivered", f"http://{name}:{receiver.port}/flaky")  # unresolvable now: accepted
    _ingest(lab, tenant, ["delivered"] * 20)
    time.sleep(2.0)  # two rounds of attempts against a failing resolver
    during = _errors(lab, tenant)
    assert not any(status == "failed" for status, _, _ in during), during
    assert any(attempts >= 1 and error and "cannot be resolved" in error for _, attempts, error in during), during
    assert receiver.on("/flaky") == []
    metrics = httpx.get(f"{lab.base_url}/metrics").text
    assert any(line.startswith('mailhooks_attempt_failures_total{kind="unresolvable"}') and float(line.split()[-1]) > 0
               for line in metrics.splitlines()), metrics
    stub.recover()
    counts = _wait_finished(lab, tenant, 20, timeout=20)
    assert counts == {"succeeded": 20}, (counts, _errors(lab, tenant))
    assert len(receiver.on("/flaky")) == 20


def test_a_slow_resolver_under_load_fails_nothing_and_is_asked_little(
        lab: ServerProcess, stub: StubDNS, receiver: Receiver) -> None:
    tenant = Provisioner(lab.db_url).tenant()
    names = [_name(f"slow{i}") for i in range(5)]
    for name in names:
        stub.answer(name, "127.0.0.1")
    stub.slow(0.25)
    urls = [f"http://{name}:{receiver.port}/slow{i}" for i, name in enumerate(names)]
    _subscribe(lab, tenant, "delivered", *urls[:3])
    _subscribe(lab, tenant, "opened", *urls[3:])
    events = ["delivered", "opened"] * 600  # 600 x 3 + 600 x 2 = 3,000 deliveries
    started = time.monotonic()
    _ingest(lab, tenant, events)
    counts = _wait_finished(lab, tenant, 3000, timeout=120)
    elapsed = time.monotonic() - started
    queries = sum(stub.query_count(name) for name in names)
    print(f"slow resolver (0.25 s a lookup): {counts} in {elapsed:.1f}s, stub saw {queries} queries")
    assert counts == {"succeeded": 3000}, counts
    # the subscribe-time lookups included; a working cache asks a few times per name, not per delivery
    assert queries <= 10 * len(names), queries


def test_a_name_resolving_to_a_refused_address_fails_at_once(
        strict_lab: ServerProcess, stub: StubDNS, receiver: Receiver) -> None:
    tenant = Provisioner(strict_lab.db_url).tenant()
    name = _name("private")
    stub.answer(name, "127.0.0.1")
    url = f"http://{name}:{receiver.port}/private"
    r = httpx.post(f"{strict_lab.base_url}/v3/domains/{tenant.domain}/webhooks", auth=("api", tenant.api_key),
                   data={"id": "delivered", "url": url})
    assert r.status_code == 400 and "127.0.0.1" in r.json()["message"], r.text
    _insert_webhook(strict_lab.db_url, tenant, url)  # as if subscribed before the policy changed
    _ingest(strict_lab, tenant, ["delivered"])
    _wait_finished(strict_lab, tenant, 1, timeout=15)
    [(status, attempts, error)] = _errors(strict_lab, tenant)
    assert (status, attempts) == ("failed", 1), (status, attempts, error)
    assert error is not None and error.startswith("refused") and "127.0.0.1" in error, error
    assert receiver.on("/private") == []


LOOKUPS = """
import asyncio, sys, time
from mailhooks.core.resolver import HostResolver

async def main() -> None:
    names = sys.argv[1:]
    resolver = HostResolver(concurrency=2, timeout=0.6)
    t0 = time.monotonic()
    # 8 names at once through 2 threads (4 rounds of 0.3 s: 1.2 s of queueing, over the 0.6 s deadline),
    # and each name asked 25 times at once
    results = await asyncio.gather(*(resolver.addresses(n) for n in names for _ in range(25)),
                                   return_exceptions=True)
    failed = [r for r in results if isinstance(r, Exception)]
    print(len(results), len(failed), resolver.lookups, round(time.monotonic() - t0, 2), failed[:1])

asyncio.run(main())
"""


def test_lookups_are_shared_and_their_deadline_excludes_waiting_for_a_thread(stub: StubDNS) -> None:
    names = [_name(f"queue{i}") for i in range(8)]
    for name in names:
        stub.answer(name, "127.0.0.1")
    stub.slow(0.3)
    out = subprocess.run([*stub.namespace_argv(), sys.executable, "-c", LOOKUPS, *names],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    total, failed, lookups, _, first_failure = out.stdout.split(" ", 4)
    assert (int(total), int(failed), int(lookups)) == (200, 0, 8), out.stdout
    assert sum(stub.query_count(name) for name in names) == 16, stub.queries  # one A + one AAAA per name
    del first_failure


TIMEOUTS = """
import asyncio, sys
from mailhooks.core.resolver import HostResolver, LookupTimedOut

async def main() -> None:
    resolver = HostResolver(timeout=0.3, negative_ttl=1.0)
    for _ in range(2):  # the second is answered from the brief negative cache
        try:
            await resolver.addresses(sys.argv[1])
            print("ok", resolver.lookups, flush=True)
        except LookupTimedOut as exc:
            print("timeout", resolver.lookups, exc, flush=True)
    sys.stdin.readline()  # the test has made the resolver healthy again
    await asyncio.sleep(1.0)  # the negative entry expires
    print("ok" if await resolver.addresses(sys.argv[1]) else "empty", resolver.lookups, flush=True)

asyncio.run(main())
"""


def test_a_lookup_past_its_deadline_is_a_timeout_remembered_only_briefly(stub: StubDNS) -> None:
    name = _name("late")
    stub.answer(name, "127.0.0.1")
    stub.slow(0.7)  # past the 0.3 s deadline, within the 1 s the stub's resolv.conf gives the C library
    proc = subprocess.Popen([*stub.namespace_argv(), sys.executable, "-c", TIMEOUTS, name], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    first, second = proc.stdout.readline(), proc.stdout.readline()
    assert first.startswith("timeout 1 ") and "no answer within 0.3s" in first, (first, second)
    assert second.startswith("timeout 1 "), (first, second)  # from the negative cache: no second query
    stub.recover()
    proc.stdin.write("\n")
    proc.stdin.flush()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert stdout.strip() == "ok 2", (stdout, stderr)
