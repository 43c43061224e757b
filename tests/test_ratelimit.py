"""The per-account rate limit (``MAILHOOKS_RATE_LIMIT``) over real HTTP against real server processes.

docs/dialects/README.md#limits-shared-by-both-dialects: per account, shared through Redis when
``MAILHOOKS_REDIS_URL`` is set; a 429 carries
``Retry-After``, ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining``; the Mailgun body is
``{"message": …, "retry-seconds": N}``, the Kirim body (docs/dialects/kirimemail.md#rate-limits) is
``{"success":false,"message":"Too many attempts. Please try again later."}``.

The limited servers run ``mailhooks api`` on the database of the session ``server`` (which has a limit
nobody reaches), so that server can check what a refused request did not change. The limiter counts
per account guid and every test makes fresh accounts, so runs never share a budget, in Redis either.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.redis import Blackhole, RedisServer
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


# ---------------------------------------------------------------------- a Redis that hangs
UNAVAILABLE = "redis-unavailable (counting per process)"


def _health(proc: ServerProcess) -> dict[str, str]:
    started = time.monotonic()
    r = httpx.get(f"{proc.base_url}/healthz", timeout=5)
    assert time.monotonic() - started < 2, "healthz waited on the limiter's backend"
    assert r.status_code == 200, r.text  # the API serves without Redis: reported, not unready
    return r.json()  # type: ignore[no-any-return]


def _prompt_and_correct(procs: list[ServerProcess], tenants: list[Tenant]) -> float:
    """Every dialect answers each tenant, correctly and each within 2 s; returns the slowest answer."""
    slowest = 0.0
    for proc in procs:
        for t in tenants:
            for dialect, (cl, path) in calls(proc, t).items():
                with cl:
                    started = time.monotonic()
                    r = cl.get(path, timeout=5)
                    took = time.monotonic() - started
                assert r.status_code == 200, (dialect, r.status_code, r.text)
                if dialect == "mailgun":
                    assert r.json() == {"webhooks": {}}
                elif dialect == "kirim":
                    assert r.json()["success"] is True
                else:
                    assert r.json() == {"items": [], "next_cursor": None}
                assert took < 2, (dialect, took)
                slowest = max(slowest, took)
            r = httpx.post(f"{proc.base_url}/v1/events", headers={"Authorization": f"Bearer {t.api_key}"},
                           json={"domain": t.domain, "event": "delivered", "recipient": "bob@example.org"}, timeout=5)
            assert r.status_code == 202, r.text
    return slowest


# The limiter sits in front of either database the same way: these run on SQLite only.
def test_a_frozen_redis_neither_hangs_nor_refuses_and_the_shared_budget_comes_back(
        sqlite_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    log_dir = tmp_path_factory.mktemp("ratelimit-frozen")
    provision = Provisioner(sqlite_url)
    with RedisServer() as redis:
        procs = [limited_server(sqlite_url, log_dir, MAILHOOKS_REDIS_URL=redis.url) for _ in range(2)]
        try:
            for proc in procs:
                proc.start()
            assert all(_health(proc)["rate_limit"] == "redis" for proc in procs)

            redis.freeze()
            # three accounts x three dialects x two processes, plus ingest: each prompt and right (the
            # deadline is paid once, then Redis is left alone); nobody is refused for Redis being down
            started = time.monotonic()
            _prompt_and_correct(procs, [provision.tenant(prefix="rlf") for _ in range(3)])
            assert time.monotonic() - started < 6
            assert all(_health(proc)["rate_limit"] == UNAVAILABLE for proc in procs)

            redis.thaw()
            deadline = time.monotonic() + 15
            while not all(_health(proc)["rate_limit"] == "redis" for proc in procs):
                assert time.monotonic() < deadline, "the limiter did not go back to Redis"
                time.sleep(0.2)
            # one budget for both processes again, counted right (no stale answer read off a connection
            # whose command had been abandoned while Redis was frozen)
            t = provision.tenant(prefix="rlf")
            one, two = (calls(proc, t) for proc in procs)
            try:
                for cl, path in (one["mailgun"], two["kirim"], one["native"], two["mailgun"], one["kirim"]):
                    r = cl.get(path)
                    assert r.status_code == 200, r.text
                assert_limited(two["native"][0].get(two["native"][1]), "native")
                assert_limited(one["mailgun"][0].get(one["mailgun"][1]), "mailgun")
            finally:
                for cl, _ in (*one.values(), *two.values()):
                    cl.close()
        finally:
            for proc in procs:
                proc.stop()


def test_a_redis_that_accepts_and_never_answers_does_not_hang_the_api(
        sqlite_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    provision = Provisioner(sqlite_url)
    with Blackhole() as hole:
        proc = limited_server(sqlite_url, tmp_path_factory.mktemp("ratelimit-blackhole"), MAILHOOKS_REDIS_URL=hole.url)
        proc.start()
        try:
            _prompt_and_correct([proc], [provision.tenant(prefix="rlb") for _ in range(2)])
            assert _health(proc)["rate_limit"] == UNAVAILABLE
            assert hole.accepted >= 1
        finally:
            proc.stop()


# ---------------------------------------------------------------------- ingest has its own budget
def _post_events(base_url: str, t: Tenant, count: int, threads: int = 4) -> list[int]:
    """``count`` single-event posts (the way a mail server reports), from a few connections at once."""
    from concurrent.futures import ThreadPoolExecutor

    def worker(part: int) -> list[int]:
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {t.api_key}"}, timeout=30) as cl:
            return [cl.post("/v1/events", json={"id": f"ev-{part}-{i}", "domain": t.domain, "event": "delivered",
                                                 "recipient": "bob@example.org"}).status_code
                    for i in range(count // threads)]

    with ThreadPoolExecutor(threads) as pool:
        return [status for part in pool.map(worker, range(threads)) for status in part]


def test_single_event_ingest_is_not_held_to_the_management_budget(
        sqlite_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Default settings: 1,000 single-event posts in a few seconds are all accepted, and the management
    dialects still have their own 300/minute."""
    provision = Provisioner(sqlite_url)
    proc = ServerProcess(sqlite_url, log_dir=tmp_path_factory.mktemp("ingest-budget"), command="api",
                         env={"MAILHOOKS_RATE_LIMIT": "", "MAILHOOKS_INGEST_RATE_LIMIT": "", "MAILHOOKS_REDIS_URL": ""})
    proc.start()
    try:
        t = provision.tenant(prefix="ing")
        started = time.monotonic()
        statuses = _post_events(proc.base_url, t, 1000)
        took = time.monotonic() - started
        assert statuses.count(202) == 1000, {s: statuses.count(s) for s in set(statuses)}
        assert took < 30, took
        with httpx.Client(base_url=proc.base_url, auth=("api", t.api_key), timeout=30) as mg:
            for _ in range(300):
                assert mg.get(f"/v3/domains/{t.domain}/webhooks").status_code == 200
            r = mg.get(f"/v3/domains/{t.domain}/webhooks")
            assert r.status_code == 429 and r.headers["x-ratelimit-limit"] == "300", r.text
    finally:
        proc.stop()


def test_the_ingest_budget_refuses_in_the_native_shape_when_set_low(
        sqlite_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    provision = Provisioner(sqlite_url)
    proc = ServerProcess(sqlite_url, log_dir=tmp_path_factory.mktemp("ingest-budget-low"), command="api",
                         env={"MAILHOOKS_RATE_LIMIT": f"{LIMIT}/minute", "MAILHOOKS_INGEST_RATE_LIMIT": "3/minute",
                              "MAILHOOKS_REDIS_URL": ""})
    proc.start()
    try:
        t = provision.tenant(prefix="ingl")
        assert _post_events(proc.base_url, t, 3, threads=1) == [202, 202, 202]
        r = httpx.post(f"{proc.base_url}/v1/events", headers={"Authorization": f"Bearer {t.api_key}"},
                       json={"domain": t.domain, "event": "opened", "recipient": "bob@example.org"})
        assert r.status_code == 429, r.text
        seconds = int(r.headers["retry-after"])
        assert 1 <= seconds <= 60
        assert r.json() == {"message": "Too many requests", "retry_seconds": seconds}
        assert r.headers["x-ratelimit-limit"] == "3" and r.headers["x-ratelimit-remaining"] == "0"
        # the management budget is another one: untouched by the ingest above
        for dialect, (cl, path) in calls(proc, t).items():
            with cl:
                assert cl.get(path).status_code == 200, dialect
    finally:
        proc.stop()


# ---------------------------------------------------------------------- guessing keys
def _ui_sign_in(base_url: str, key: str, address: str) -> httpx.Response:
    with httpx.Client(base_url=base_url, headers={"X-Forwarded-For": address}) as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
        assert token is not None
        return client.post("/ui/login", data={"csrf": token.group(1), "api_key": key, "next": "/ui"})


def test_wrong_keys_are_throttled_per_client_address_in_every_dialect_and_the_dashboard(
        sqlite_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """After 5 failed sign-ins in a minute an address is refused (429 in the dialect's shape) before its key
    is looked at, even a right key; another address is not affected. uvicorn takes the address from
    X-Forwarded-For when the peer is 127.0.0.1 (a local reverse proxy), which stands in for two clients."""
    provision = Provisioner(sqlite_url)
    proc = ServerProcess(sqlite_url, log_dir=tmp_path_factory.mktemp("auth-failures"), command="api",
                         env={"MAILHOOKS_AUTH_FAILURE_LIMIT": "5/minute", "MAILHOOKS_REDIS_URL": ""})
    proc.start()
    try:
        t = provision.tenant(prefix="guess")
        guesser, neighbour = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}
        mailgun = f"{proc.base_url}/v3/domains/{t.domain}/webhooks"
        kirim = f"{proc.base_url}/api/domains/{t.domain}/webhooks"
        native = f"{proc.base_url}/v1/deliveries"
        # five wrong keys over the dialects and the sign-in form: each a plain "who are you?"
        assert httpx.get(mailgun, auth=("api", "mh_wrong1"), headers=guesser).status_code == 401
        assert httpx.get(kirim, auth=(t.username, "mh_wrong2"), headers=guesser).status_code == 401
        assert httpx.get(native, headers={**guesser, "Authorization": "Bearer mh_wrong3"}).status_code == 401
        assert httpx.get(mailgun, auth=("api", "mh_wrong4"), headers=guesser).status_code == 401
        assert _ui_sign_in(proc.base_url, "mh_wrong5", guesser["X-Forwarded-For"]).status_code == 401
        # now that address is refused before any key is checked, the right one included, in each shape
        r = httpx.get(mailgun, auth=("api", t.api_key), headers=guesser)
        assert r.status_code == 429 and set(r.json()) == {"message", "retry-seconds"}, r.text
        assert int(r.headers["retry-after"]) >= 1
        r = httpx.get(kirim, auth=(t.username, t.api_key), headers=guesser)
        assert r.status_code == 429 and r.json() == KIRIM_429
        r = httpx.get(native, headers={**guesser, "Authorization": f"Bearer {t.api_key}"})
        assert r.status_code == 429 and set(r.json()) == {"message", "retry_seconds"}
        r = httpx.post(f"{proc.base_url}/v1/events", headers={**guesser, "Authorization": "Bearer mh_wrong6"},
                       json={"domain": t.domain, "event": "opened", "recipient": "bob@example.org"})
        assert r.status_code == 429
        page = _ui_sign_in(proc.base_url, t.api_key, guesser["X-Forwarded-For"])
        assert page.status_code == 429 and "text/html" in page.headers["content-type"]
        assert "Too many requests" in page.text and int(page.headers["retry-after"]) >= 1
        # the neighbour's address has its own budget: right keys work, wrong ones are 401s
        assert httpx.get(mailgun, auth=("api", t.api_key), headers=neighbour).status_code == 200
        assert httpx.get(native, headers={**neighbour, "Authorization": "Bearer mh_wrong"}).status_code == 401
        assert _ui_sign_in(proc.base_url, t.api_key, neighbour["X-Forwarded-For"]).status_code == 303
    finally:
        proc.stop()
