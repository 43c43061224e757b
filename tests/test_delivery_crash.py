"""Never lost: 2,000 events ingested while ``mailhooks serve`` is SIGKILLed mid-stream and restarted.

Every acknowledged event must reach the receiver at least once; duplicates (sent, then killed before
the result was written) are allowed and printed. A short lease makes the dead process's claims come
back quickly.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter

import httpx
import pytest

from tests.support import (
    Provisioner,
    Receiver,
    ServerProcess,
)

EVENTS = 2000
BATCH = 20
ENV = {
    "MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1",
    "MAILHOOKS_RATE_LIMIT": "1000000/minute",
    "MAILHOOKS_RETRY_SCHEDULE": "0.2,0.2,0.2,0.2,0.2",
    "MAILHOOKS_LEASE_SECONDS": "2",
    "MAILHOOKS_DELIVERY_TIMEOUT": "1",
    "MAILHOOKS_POLL_INTERVAL": "0.1",
}


def event_ids_received(receiver: Receiver, path: str) -> Counter[str]:
    return Counter(json.loads(r.body)["event-data"]["id"] for r in receiver.on(path))


def ingest_all(base_url: str, api_key: str, domain: str, acknowledged: set[str], deadline: float) -> None:
    """Send every batch until it is acknowledged, riding through the server's death and restart."""
    headers = {"Authorization": f"Bearer {api_key}"}
    run = uuid.uuid4().hex[:8]
    for start in range(0, EVENTS, BATCH):
        batch = [{"id": f"{run}-{i}", "domain": domain, "event": "delivered", "recipient": f"u{i}@x.example"}
                 for i in range(start, start + BATCH)]
        while True:
            assert time.monotonic() < deadline, "ingest did not finish"
            try:
                r = httpx.post(f"{base_url}/v1/events", json=batch, headers=headers, timeout=10)
                if r.status_code == 202:
                    acknowledged.update(r.json()["ids"])
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)


def test_sigkill_mid_stream_loses_nothing(empty_db: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    receiver = Receiver().start()
    server = ServerProcess(empty_db, log_dir=tmp_path_factory.mktemp("crash-logs"), env=ENV)
    server.start()
    try:
        tenant = Provisioner(empty_db).tenant()
        r = httpx.post(f"{server.base_url}/v3/domains/{tenant.domain}/webhooks", auth=("api", tenant.api_key),
                       data={"id": "delivered", "url": receiver.url("/crash")})
        assert r.status_code == 200, r.text

        acknowledged: set[str] = set()
        deadline = time.monotonic() + 120
        ingester = threading.Thread(target=ingest_all, daemon=True,
                                    args=(server.base_url, tenant.api_key, tenant.domain, acknowledged, deadline))
        ingester.start()
        while len(receiver.on("/crash")) < EVENTS // 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()  # SIGKILL: no shutdown hook runs, leases stay held
        killed_at = len(receiver.on("/crash"))
        server.start()
        ingester.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not ingester.is_alive()
        assert len(acknowledged) == EVENTS

        while time.monotonic() < deadline:
            if acknowledged <= set(event_ids_received(receiver, "/crash")):
                break
            time.sleep(0.1)
        received = event_ids_received(receiver, "/crash")
        missing = acknowledged - set(received)
        duplicates = sum(n - 1 for n in received.values())
        print(f"\ncrash test [{empty_db.split(':')[0]}]: killed after {killed_at} arrivals; "
              f"{len(received)} unique events received, {duplicates} duplicates, {len(missing)} missing")
        assert not missing, f"{len(missing)} acknowledged events never arrived"
    finally:
        server.stop()
        receiver.stop()
