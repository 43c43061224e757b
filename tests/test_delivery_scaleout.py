"""Scale-out on PostgreSQL: ``mailhooks api`` plus two ``mailhooks worker`` processes.

Clean run: both workers take a share and no delivery is sent twice (``FOR UPDATE SKIP LOCKED``).
Then one worker is SIGKILLed mid-stream: its leases expire, the other re-claims them, nothing is lost.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter

import httpx
import pytest

from tests.support import (
    Provisioner,
    Receiver,
    ServerProcess,
)

EVENTS = 2000
ENV = {
    "MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1",
    "MAILHOOKS_RATE_LIMIT": "1000000/minute",
    "MAILHOOKS_RETRY_SCHEDULE": "0.2,0.2,0.2,0.2,0.2",
    "MAILHOOKS_LEASE_SECONDS": "3",
    "MAILHOOKS_DELIVERY_TIMEOUT": "1",
    "MAILHOOKS_POLL_INTERVAL": "0.1",
    # smaller claims than the default so that both workers get work even on a short stream
    "MAILHOOKS_WORKER_BATCH": "50",
    "MAILHOOKS_WORKER_CONCURRENCY": "100",
}


def ingest(base_url: str, api_key: str, domain: str, tag: str) -> set[str]:
    headers = {"Authorization": f"Bearer {api_key}"}
    ids: set[str] = set()
    for start in range(0, EVENTS, 100):
        batch = [{"id": f"{tag}-{i}", "domain": domain, "event": "delivered", "recipient": f"u{i}@x.example"}
                 for i in range(start, start + 100)]
        r = httpx.post(f"{base_url}/v1/events", json=batch, headers=headers, timeout=30)
        assert r.status_code == 202, r.text
        ids.update(r.json()["ids"])
    return ids


def received(receiver: Receiver, path: str) -> tuple[Counter[str], Counter[str]]:
    """(arrivals per event id, arrivals per webhook-id)"""
    got = receiver.on(path)
    return (Counter(json.loads(r.body)["event-data"]["id"] for r in got),
            Counter(r.headers["webhook-id"] for r in got))


def wait_all(receiver: Receiver, path: str, ids: set[str], timeout: float) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        by_event, _ = received(receiver, path)
        if ids <= set(by_event):
            return by_event
        time.sleep(0.1)
    by_event, _ = received(receiver, path)
    raise AssertionError(f"{len(ids - set(by_event))} of {len(ids)} events never arrived")


def sent_by(worker: ServerProcess) -> int:
    """Attempts the worker reported when it last stopped."""
    matches = re.findall(r'"sent": (\d+)', worker.logs())
    assert matches, worker.logs()[-2000:]
    return int(matches[-1])


@pytest.mark.parametrize("empty_db", ["postgresql"], indirect=True)  # workers share a queue on PostgreSQL only
def test_two_workers_share_the_load_and_survive_sigkill(empty_db: str, tmp_path_factory: pytest.TempPathFactory
                                                        ) -> None:
    logs = tmp_path_factory.mktemp("scaleout-logs")
    receiver = Receiver().start()
    api = ServerProcess(empty_db, log_dir=logs, env=ENV, command="api")
    api.start()
    workers = [ServerProcess(empty_db, log_dir=logs, env=ENV, command="worker", port=i) for i in (1, 2)]
    for worker in workers:
        worker.start(migrate=False)
    try:
        tenant = Provisioner(empty_db).tenant()
        r = httpx.post(f"{api.base_url}/v3/domains/{tenant.domain}/webhooks", auth=("api", tenant.api_key),
                       data={"id": "delivered", "url": [receiver.url("/clean"), receiver.url("/kill")]})
        assert r.status_code == 200, r.text

        # clean run: every delivery exactly once
        ids = ingest(api.base_url, tenant.api_key, tenant.domain, "clean")
        wait_all(receiver, "/clean", ids, 60)
        wait_all(receiver, "/kill", ids, 60)
        time.sleep(0.5)
        for path in ("/clean", "/kill"):
            by_event, by_message = received(receiver, path)
            assert max(by_message.values()) == 1, f"{path}: a delivery was sent twice in a clean run"
            assert len(by_event) == EVENTS
        for worker in workers:
            worker.stop()  # SIGTERM: graceful; each logs how many attempts it made
        shares = [sent_by(worker) for worker in workers]
        print(f"\nscale-out clean run: attempts per worker {shares}")
        assert sum(shares) == 2 * EVENTS and min(shares) > 0, f"the load was not shared: {shares}"
        receiver.requests.clear()
        for worker in workers:
            worker.start(migrate=False)

        # kill run: SIGKILL one worker mid-stream
        ids = ingest(api.base_url, tenant.api_key, tenant.domain, "kill")
        deadline = time.monotonic() + 30
        while len(receiver.on("/kill")) < EVENTS // 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        workers[0].kill()
        by_event = wait_all(receiver, "/kill", ids, 60)
        wait_all(receiver, "/clean", ids, 60)
        duplicates = sum(n - 1 for n in by_event.values())
        print(f"\nscale-out: after SIGKILL of one worker, {len(by_event)} events arrived, {duplicates} duplicates")

        workers[1].stop()
        assert sent_by(workers[1]) > 0
    finally:
        for worker in workers:
            worker.stop()
        api.stop()
        receiver.stop()
