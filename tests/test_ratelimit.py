"""The per-account rate limit (``MAILHOOKS_RATE_LIMIT``) over real HTTP against real server processes.

DESIGN.md: per account, shared through Redis when ``MAILHOOKS_REDIS_URL`` is set; a 429 carries
``Retry-After``, ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining``; the Mailgun body is
``{"message": …, "retry-seconds": N}``, the Kirim body is spec/kirimemail.md §4
``{"success":false,"message":"Too many attempts. Please try again later."}``.

The limited servers run ``mailhooks api`` on the database of the session ``server`` (which has a limit
nobody reaches), so that server can check what a refused request did not change. The limiter counts
per account guid and every test makes fresh accounts, so runs never share a budget, in Redis either.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import Provisioner, ServerProcess, Tenant, free_port

LIMIT = 5
KIRIM_429 = {"success": False, "message": "Too many attempts. Please try again later."}


def limited_server(db_url: str, log_dir: Path, **env: str) -> ServerProcess:
    return ServerProcess(db_url, log_dir=log_dir, command="api",
                         env={"MAILHOOKS_RATE_LIMIT": f"{LIMIT}/minute", "MAILHOOKS_REDIS_URL": "", **env})


@pytest.fixture(scope="module")
def limited(db_url: str, server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """5 requests per minute per account, counted in this process's memory."""
    proc = limited_server(db_url, tmp_path_factory.mktemp("ratelimit"))
    proc.start(migrate=False)
    yield proc
    proc.stop()


def calls(server: ServerProcess, t: Tenant) -> dict[str, tuple[httpx.Client, str]]:
    """One read per dialect for this tenant: client and path."""
    return {
        "mailgun": (httpx.Client(base_url=server.base_url, auth=("api", t.api_key), timeout=30),
                    f"/v3/domains/{t.domain}/webhooks"),
        "kirim": (httpx.Client(base_url=server.base_url, auth=(t.username, t.api_key), timeout=30),
                  f"/api/domains/{t.domain}/webhooks"),
        "native": (httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {t.api_key}"},
                                timeout=30), "/v1/deliveries"),
    }


def assert_limited(response: httpx.Response, dialect: str) -> int:
    """A 429 in the dialect's shape with the three headers; returns the advertised wait in seconds."""
    assert response.status_code == 429, (dialect, response.status_code, response.text)
    retry_after = int(response.headers["retry-after"])
    assert 30 <= retry_after <= 60, retry_after  # the minute's window opened a few seconds ago
    assert response.headers["x-ratelimit-limit"] == str(LIMIT)
    assert response.headers["x-ratelimit-remaining"] == "0"
    if dialect == "mailgun":
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        assert response.json() == {"message": "Too many requests", "retry-seconds": retry_after}
        assert response.content == b'{"message":"Too many requests","retry-seconds":%d}\n' % retry_after
    elif dialect == "kirim":
        assert response.headers["content-type"] == "application/json"
        assert response.json() == KIRIM_429
    else:
        assert response.json() == {"message": "Too many requests", "retry_seconds": retry_after}
    return retry_after


def test_budget_is_per_account_across_dialects_then_429_in_each_dialects_shape(
        limited: ServerProcess, provision: Provisioner) -> None:
    a, b = provision.tenant(prefix="rla"), provision.tenant(prefix="rlb")
    a_calls, b_calls = calls(limited, a), calls(limited, b)
    try:
        # A's 5 requests, spread over the three dialects, all pass: one budget for the account
        for dialect in ("mailgun", "kirim", "native", "mailgun", "kirim"):
            cl, path = a_calls[dialect]
            r = cl.get(path)
            assert r.status_code == 200, (dialect, r.text)
        # the 6th and later are refused, in every dialect's own shape
        for dialect in ("mailgun", "kirim", "native"):
            cl, path = a_calls[dialect]
            assert_limited(cl.get(path), dialect)
        # B is untouched by A's exhaustion: its own full budget, then its own 429
        for dialect in ("native", "kirim", "mailgun", "mailgun", "native"):
            cl, path = b_calls[dialect]
            r = cl.get(path)
            assert r.status_code == 200, (dialect, r.text)
        assert_limited(b_calls["kirim"][0].get(b_calls["kirim"][1]), "kirim")
        # still refused for A; a wrong key is still "who are you?" (401), not a 429
        assert_limited(a_calls["mailgun"][0].get(a_calls["mailgun"][1]), "mailgun")
        wrong = httpx.get(f"{limited.base_url}/v3/domains/{a.domain}/webhooks", auth=("api", "mh_wrong"))
        assert wrong.status_code == 401 and wrong.text == "Forbidden"
    finally:
        for cl, _ in (*a_calls.values(), *b_calls.values()):
            cl.close()


def test_a_refused_write_changes_nothing(limited: ServerProcess, server: ServerProcess,
                                         provision: Provisioner) -> None:
    t = provision.tenant(prefix="rlw")
    hook = "https://hooks.example.com/limited"
    with httpx.Client(base_url=limited.base_url, auth=("api", t.api_key), timeout=30) as mg:
        for _ in range(LIMIT):
            assert mg.get(f"/v3/domains/{t.domain}/webhooks").status_code == 200
        assert_limited(mg.post(f"/v3/domains/{t.domain}/webhooks", data={"id": "clicked", "url": hook}), "mailgun")
    with httpx.Client(base_url=limited.base_url, auth=(t.username, t.api_key), timeout=30) as ki:
        r = ki.post(f"/api/domains/{t.domain}/webhooks", json={"type": "delivered", "url": hook})
        assert r.status_code == 429 and r.json() == KIRIM_429
    # read back through the unlimited server on the same database: nothing was created
    r = httpx.get(f"{server.base_url}/v3/domains/{t.domain}/webhooks", auth=("api", t.api_key))
    assert r.status_code == 200 and r.json() == {"webhooks": {}}


def test_two_processes_share_one_budget_through_redis(db_url: str, server: ServerProcess, redis_url: str,
                                                      provision: Provisioner,
                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    log_dir = tmp_path_factory.mktemp("ratelimit-redis")
    procs = [limited_server(db_url, log_dir, MAILHOOKS_REDIS_URL=redis_url) for _ in range(2)]
    try:
        for proc in procs:
            proc.start(migrate=False)
        t = provision.tenant(prefix="rlr")
        one, two = (calls(proc, t) for proc in procs)
        try:
            # 3 requests on one process and 2 on the other use up the one shared budget of 5 ...
            for cl, path in (one["mailgun"], two["kirim"], one["native"], two["mailgun"], one["kirim"]):
                r = cl.get(path)
                assert r.status_code == 200, r.text
            # ... so the next one is refused by either process (each alone has seen fewer than 5)
            assert_limited(two["native"][0].get(two["native"][1]), "native")
            assert_limited(one["mailgun"][0].get(one["mailgun"][1]), "mailgun")
            # another account has its own budget in the same Redis
            other = provision.tenant(prefix="rlr")
            with httpx.Client(base_url=procs[1].base_url, auth=("api", other.api_key), timeout=30) as cl:
                assert cl.get(f"/v3/domains/{other.domain}/webhooks").status_code == 200
        finally:
            for cl, _ in (*one.values(), *two.values()):
                cl.close()
    finally:
        for proc in procs:
            proc.stop()


def test_an_unreachable_redis_does_not_take_the_api_down(db_url: str, server: ServerProcess, provision: Provisioner,
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    proc = limited_server(db_url, tmp_path_factory.mktemp("ratelimit-noredis"),
                          MAILHOOKS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    proc.start(migrate=False)
    try:
        t = provision.tenant(prefix="rln")
        with httpx.Client(base_url=proc.base_url, auth=("api", t.api_key), timeout=30) as mg:
            for _ in range(3):
                r = mg.get(f"/v3/domains/{t.domain}/webhooks")
                assert r.status_code == 200, r.text
                assert r.json() == {"webhooks": {}}
    finally:
        proc.stop()
