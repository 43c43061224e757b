"""``/metrics`` is anonymous: a crowd of scrapers must not turn into a crowd of full counts of the
delivery queue. The due-queue figures are counted at most every 5 s, by one scrape at a time; each
scrape says how old they are (``mailhooks_queue_figures_age_seconds``) and the process counts its
counts (``mailhooks_queue_counts_total``)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Provisioner, ServerProcess, Tenant

SCRAPERS = 50


def _figures(text: str) -> dict[str, float]:
    return {sample.name: sample.value for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name.startswith(("mailhooks_due", "mailhooks_oldest", "mailhooks_queue"))}


def _queue(proc: ServerProcess, t: Tenant, events: int) -> None:
    """``events`` deliveries due now (the API alone runs no dispatcher: they stay due)."""
    headers = {"Authorization": f"Bearer {t.api_key}"}
    for start in range(0, events, 1000):
        batch = [{"domain": t.domain, "event": "delivered", "recipient": f"r{i}@example.org"}
                 for i in range(start, min(events, start + 1000))]
        r = httpx.post(f"{proc.base_url}/v1/events", json=batch, headers=headers, timeout=60)
        assert r.status_code == 202, r.text


# SQLite only: the figures are cached above the storage, the same way for either backend.
@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)
def test_a_crowd_of_scrapes_counts_the_queue_once_and_the_figure_follows_within_seconds(
        empty_db: str, tmp_path: Path) -> None:
    proc = ServerProcess(empty_db, log_dir=tmp_path, command="api",
                         env={"MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1", "MAILHOOKS_REDIS_URL": ""})
    proc.start()
    try:
        t = Provisioner(empty_db).tenant(prefix="scrape")
        with httpx.Client(base_url=proc.base_url, auth=("api", t.api_key)) as mg:
            r = mg.post(f"/v3/domains/{t.domain}/webhooks", data={"id": "delivered", "url": "http://127.0.0.1:9/h"})
            assert r.status_code == 200, r.text
        _queue(proc, t, 3000)

        def scrape(_: int) -> tuple[float, dict[str, float]]:
            started = time.monotonic()
            r = httpx.get(f"{proc.base_url}/metrics", timeout=30)
            assert r.status_code == 200
            return time.monotonic() - started, _figures(r.text)

        with ThreadPoolExecutor(SCRAPERS) as pool:
            scrapes = list(pool.map(scrape, range(SCRAPERS)))
        # every scrape of the crowd reports the queue as it is, and the queue was counted once for them all
        assert {figures["mailhooks_due_deliveries"] for _, figures in scrapes} == {3000.0}
        assert max(figures["mailhooks_queue_counts_total"] for _, figures in scrapes) == 1.0
        assert all(figures["mailhooks_queue_figures_age_seconds"] < 5 for _, figures in scrapes)

        # more work arrives: the figure follows within the refresh interval (5 s), counted once more
        _queue(proc, t, 1000)
        deadline = time.monotonic() + 8
        while (figures := scrape(0)[1])["mailhooks_due_deliveries"] != 4000.0:
            assert figures["mailhooks_due_deliveries"] == 3000.0  # the previous count, until the next one
            assert time.monotonic() < deadline, figures
            time.sleep(0.25)
        assert figures["mailhooks_queue_counts_total"] == 2.0
        assert figures["mailhooks_oldest_due_age_seconds"] > 0
    finally:
        proc.stop()
