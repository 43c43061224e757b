"""Scoped API keys, end to end against a real ``mailhooks serve`` on SQLite and PostgreSQL: what each scope
may do through every dialect and the dashboard, domain-limited keys, ``last_used_at``, and the rule that
every route of the app declares what it needs."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import uuid
from typing import Any

import httpx

from mailhooks.api.app import create_app
from mailhooks.api.scopes import PUBLIC_PATHS, need_of
from mailhooks.config import Settings
from mailhooks.core import accounts as core_accounts
from mailhooks.core.scopes import Need, Scope
from mailhooks.db.store import Store
from tests.support import MAILHOOKS, ROOT, Provisioner, ServerProcess, Tenant
from tests.test_cli import base_env


# ---------------------------------------------------------------------- helpers
def make_key(db_url: str, tenant: Tenant, scope: Scope, domain: str | None = None) -> str:
    """A new key of ``tenant`` (the same code the CLI and the dashboard run)."""

    async def work() -> str:
        store = Store(db_url)
        try:
            account = await store.get_account_by_username(tenant.username)
            assert account is not None
            return await core_accounts.create_api_key(store, account, scope, domain)
        finally:
            await store.close()

    return asyncio.run(work())


def client(server: ServerProcess, key: str, user: str = "api") -> httpx.Client:
    return httpx.Client(base_url=server.base_url, auth=(user, key), timeout=10)


def event(domain: str, event_id: str | None = None) -> dict[str, Any]:
    return {"id": event_id or uuid.uuid4().hex, "event": "delivered", "domain": domain,
            "recipient": "someone@example.net"}


def webhook_state(server: ServerProcess, tenant: Tenant, domain: str) -> tuple[Any, Any, Any]:
    """Everything a change could touch, read with the account's admin key: the domain's webhooks as Mailgun
    and Kirim list them, and the account-level ones."""
    with client(server, tenant.api_key) as admin, client(server, tenant.api_key, tenant.username) as kirim:
        v3 = admin.get(f"/v3/domains/{domain}/webhooks")
        v1 = admin.get("/v1/webhooks")
        rows = kirim.get(f"/api/domains/{domain}/webhooks")
        assert v3.status_code == v1.status_code == rows.status_code == 200
        return v3.json(), v1.json(), rows.json()["data"]


def sign_in_status(server: ServerProcess, key: str) -> int:
    with httpx.Client(base_url=server.base_url) as browser:
        token = re.search(r'name="csrf" value="([^"]+)"', browser.get("/ui/login").text)
        assert token is not None
        return browser.post("/ui/login", data={"csrf": token.group(1), "api_key": key, "next": "/ui"}).status_code


# ---------------------------------------------------------------------- every route declares its need
def walk(routes: list[Any]) -> list[Any]:
    """Every route of the app, through included routers (FastAPI keeps them lazily, as branches)."""
    found: list[Any] = []
    for route in routes:
        branches = getattr(route, "effective_candidates", None)
        if branches is not None:
            found += walk(branches())
        else:
            found.append(route)
    return found


def test_every_route_declares_what_it_needs(tmp_path: Any) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}"), None)  # type: ignore[arg-type]
    routes = walk(app.routes)
    assert len(routes) > 50, "the walk found too few routes: did FastAPI change how it keeps them?"
    undeclared = [r.path for r in routes
                  if r.path not in PUBLIC_PATHS and need_of(getattr(r, "endpoint", None)) is None]
    assert undeclared == [], "declare each with @requires(Need.…) (src/mailhooks/api/scopes.py)"
    needs = {(method, r.path): need_of(getattr(r, "endpoint", None)) for r in routes
             for method in getattr(getattr(r, "original_route", r), "methods", None) or ()}
    assert needs[("POST", "/v1/events")] is Need.INGEST and needs[("GET", "/v1/events")] is Need.READ
    assert needs[("POST", "/v5/accounts/http_signing_key")] is Need.ADMIN
    assert needs[("GET", "/v1/audit")] is Need.ADMIN and needs[("GET", "/ui/settings")] is Need.DASHBOARD


# ---------------------------------------------------------------------- ingest-only
def test_ingest_key_ingests_and_is_refused_everywhere_else(server: ServerProcess, provision: Provisioner,
                                                            db_url: str) -> None:
    tenant = provision.tenant()
    domain = tenant.domain
    created = subprocess_json(db_url, "keys", "create", tenant.username, "--scope", "ingest", "--json")
    key = created["api_key"]
    assert created["scope"] == "ingest" and created["domain"] is None and key.startswith(created["prefix"])
    before = webhook_state(server, tenant, domain)

    with client(server, key) as api, client(server, key, tenant.username) as kirim:
        assert api.post("/v1/events", json=event(domain)).status_code == 202
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}) as bearer:
            assert bearer.post("/v1/events", json=[event(domain), event(domain)]).status_code == 202

        url = "https://example.com/hook"
        mailgun_calls = [api.get(f"/v3/domains/{domain}/webhooks"),
                         api.post(f"/v3/domains/{domain}/webhooks", data={"id": "clicked", "url": url}),
                         api.post(f"/v4/domains/{domain}/webhooks", data={"url": url, "event_types": "opened"}),
                         api.post("/v1/webhooks", data={"url": url, "event_types": "opened"}),
                         api.delete("/v1/webhooks", params={"all": "true"}),
                         api.post("/v5/accounts/http_signing_key")]
        for response in mailgun_calls:
            assert response.status_code == 403, (response.request.url, response.text)
            assert response.headers["content-type"].startswith("application/json")
            assert set(response.json()) == {"message"} and "ingest" in response.json()["message"]

        kirim_calls = [kirim.get(f"/api/domains/{domain}/webhooks"),
                       kirim.post(f"/api/domains/{domain}/webhooks", json={"type": "delivered", "url": url})]
        for response in kirim_calls:
            assert response.status_code == 403, response.text
            assert response.json()["success"] is False and "ingest" in response.json()["message"]

        for response in (api.get("/v1/events"), api.get("/v1/deliveries"), api.get("/v1/signing-key"),
                         api.get("/v1/audit"), api.post(f"/v1/domains/{domain}/deliveries/recover?since=0")):
            assert response.status_code == 403, (response.request.url, response.text)
            assert "ingest" in response.json()["message"]

    assert sign_in_status(server, key) == 403  # the dashboard: admin keys only
    assert webhook_state(server, tenant, domain) == before
    with client(server, tenant.api_key) as admin:
        assert admin.get("/v1/signing-key").json()["http_signing_key"] == tenant.signing_key
        # the events it posted are there, and the only change the log knows of is the key's creation
        assert len(admin.get("/v1/events", params={"domain": domain}).json()["items"]) == 3
        log = admin.get("/v1/audit").json()["items"]
        assert [(e["actor"], e["action"]) for e in log] == [("cli", "key.created")]


def run_cli(db_url: str, *args: str) -> str:
    """``mailhooks ARGS`` as a real subprocess; its output."""
    done = subprocess.run([MAILHOOKS, *args], env=base_env(db_url), capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def subprocess_json(db_url: str, *args: str) -> Any:
    return json.loads(run_cli(db_url, *args).strip().splitlines()[-1])


# ---------------------------------------------------------------------- read-only
def test_read_key_reads_and_cannot_change(server: ServerProcess, provision: Provisioner, db_url: str) -> None:
    tenant = provision.tenant()
    domain = tenant.domain
    with client(server, tenant.api_key) as admin:
        assert admin.post(f"/v3/domains/{domain}/webhooks",
                          data={"id": "delivered", "url": "https://example.com/a"}).status_code == 200
    key = make_key(db_url, tenant, Scope.READ)
    before = webhook_state(server, tenant, domain)
    guid = before[2][0]["webhook_guid"]

    with client(server, key) as api, client(server, key, tenant.username) as kirim:
        assert api.get(f"/v3/domains/{domain}/webhooks").json() == before[0]
        assert api.get(f"/v3/domains/{domain}/webhooks/delivered").status_code == 200
        assert api.get("/v1/webhooks").status_code == 200
        assert kirim.get(f"/api/domains/{domain}/webhooks/{guid}").json()["data"]["url"] == "https://example.com/a"
        assert api.get("/v1/deliveries").status_code == 200 and api.get("/v1/events").status_code == 200

        refused = [api.put(f"/v3/domains/{domain}/webhooks/delivered", data={"url": "https://example.com/b"}),
                   api.delete(f"/v3/domains/{domain}/webhooks/delivered"),
                   api.put(f"/v4/domains/{domain}/webhooks", data={"url": "https://example.com/a",
                                                                  "event_types": "opened"}),
                   kirim.put(f"/api/domains/{domain}/webhooks/{guid}", json={"url": "https://example.com/c"}),
                   kirim.delete(f"/api/domains/{domain}/webhooks/{guid}"),
                   api.post("/v1/events", json=event(domain)),
                   api.post(f"/v1/subscriptions/{guid}/enable"),
                   api.get("/v1/signing-key")]
        assert [r.status_code for r in refused] == [403] * len(refused), [r.text for r in refused]
    assert webhook_state(server, tenant, domain) == before
    assert sign_in_status(server, key) == 403


# ---------------------------------------------------------------------- one domain
def test_domain_limited_key_cannot_touch_another_domain(server: ServerProcess, provision: Provisioner,
                                                        db_url: str) -> None:
    tenant = provision.tenant(domains=2)
    mine, other = list(tenant.domains)
    key = make_key(db_url, tenant, Scope.MANAGE, mine.upper())  # stored normalized
    ingest = make_key(db_url, tenant, Scope.INGEST, mine)
    before_other = webhook_state(server, tenant, other)
    unknown = f"nobody-{uuid.uuid4().hex[:8]}.example"

    with client(server, key) as api, client(server, key, tenant.username) as kirim, \
            client(server, ingest) as poster:
        assert api.post(f"/v3/domains/{mine}/webhooks",
                        data={"id": "clicked", "url": "https://example.com/mine"}).status_code == 200
        # Another domain of the account is answered exactly like one that does not exist: nothing leaks.
        for path in ("/v3/domains/{d}/webhooks", "/v4/domains/{d}/webhooks"):
            theirs = api.post(path.format(d=other), data={"id": "clicked", "url": "https://example.com/x",
                                                          "event_types": "clicked"})
            absent = api.post(path.format(d=unknown), data={"id": "clicked", "url": "https://example.com/x",
                                                            "event_types": "clicked"})
            assert (theirs.status_code, theirs.content) == (absent.status_code, absent.content) == \
                (404, absent.content)
        theirs = kirim.get(f"/api/domains/{other}/webhooks")
        absent = kirim.get(f"/api/domains/{unknown}/webhooks")
        assert (theirs.status_code, theirs.json()) == (absent.status_code, absent.json())
        assert theirs.status_code == 404
        listed = api.get("/v1/deliveries", params={"domain": other})
        assert listed.status_code == 404 and listed.content == api.get("/v1/deliveries",
                                                                       params={"domain": unknown}).content
        # A route that names no domain is refused: it could reach every domain.
        assert api.get("/v1/webhooks").status_code == 403
        assert api.get("/v1/deliveries").status_code == 403
        assert api.get(f"/v1/deliveries?domain={mine}").status_code == 200

        assert poster.post("/v1/events", json=event(mine)).status_code == 202
        theirs = poster.post("/v1/events", json=[event(mine), event(other)])
        absent = poster.post("/v1/events", json=[event(mine), event(unknown)])
        assert theirs.status_code == absent.status_code and theirs.status_code >= 400
        assert theirs.content == absent.content
    assert webhook_state(server, tenant, other) == before_other
    with client(server, tenant.api_key) as admin:
        assert admin.get("/v1/events", params={"domain": other}).json()["items"] == []
        assert len(admin.get("/v1/events", params={"domain": mine}).json()["items"]) == 1


# ---------------------------------------------------------------------- last use
def test_last_used_at_is_written_once_a_minute_and_shown(server: ServerProcess, provision: Provisioner,
                                                         db_url: str) -> None:
    tenant = provision.tenant()
    key = make_key(db_url, tenant, Scope.READ)
    prefix = key[:core_accounts.KEY_PREFIX_LENGTH]

    def listed() -> dict[str, Any]:
        keys = subprocess_json(db_url, "keys", "list", tenant.username, "--json")
        return {k["prefix"]: k for k in keys}

    assert listed()[prefix]["last_used_at"] is None
    started = time.time()
    with client(server, key) as api:
        for _ in range(20):
            assert api.get("/v1/deliveries").status_code == 200
    deadline = time.monotonic() + 10
    while listed()[prefix]["last_used_at"] is None:
        assert time.monotonic() < deadline, "last_used_at was never written"
        time.sleep(0.2)
    first = listed()[prefix]["last_used_at"]
    assert started - 1 <= first <= time.time()
    with client(server, key) as api:  # used again within the minute: no new write
        assert api.get("/v1/events").status_code == 200
    time.sleep(0.5)
    assert listed()[prefix]["last_used_at"] == first

    # The dashboard shows it (and the key's scope) on the keys page.
    with httpx.Client(base_url=server.base_url) as browser:
        token = re.search(r'name="csrf" value="([^"]+)"', browser.get("/ui/login").text)
        assert token is not None
        assert browser.post("/ui/login", data={"csrf": token.group(1), "api_key": tenant.api_key,
                                               "next": "/ui"}).status_code == 303
        page = browser.get("/ui/settings").text
        row = re.search(rf'<tr data-prefix="{prefix}">(.*?)</tr>', page, re.S)
        assert row is not None
        assert "read" in row.group(1) and re.search(r"\d+ s ago", row.group(1)), row.group(1)
