"""The audit log against a real ``mailhooks serve`` on SQLite and PostgreSQL: each change through each dialect,
the dashboard and the CLI is recorded with the key (or user) that made it; ``GET /v1/audit`` pages through the
account's own log only, and the dashboard shows it."""

from __future__ import annotations

import re
from typing import Any

import httpx

from mailhooks.core.accounts import KEY_PREFIX_LENGTH
from mailhooks.core.scopes import Scope
from tests.support import Provisioner, ServerProcess
from tests.test_scoped_keys import client, make_key, run_cli, subprocess_json


def whole_log(server: ServerProcess, key: str, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    with client(server, key) as api:
        while True:
            page = api.get("/v1/audit", params={"limit": limit, "cursor": cursor})
            assert page.status_code == 200, page.text
            body = page.json()
            assert set(body) == {"items", "next_cursor"}
            items += body["items"]
            if body["next_cursor"] is None:
                return items
            cursor = body["next_cursor"]


def signed_in(server: ServerProcess, key: str) -> tuple[httpx.Client, str]:
    browser = httpx.Client(base_url=server.base_url)
    token = re.search(r'name="csrf" value="([^"]+)"', browser.get("/ui/login").text)
    assert token is not None
    assert browser.post("/ui/login", data={"csrf": token.group(1), "api_key": key, "next": "/ui"}).status_code == 303
    csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/ui/settings").text)
    assert csrf is not None
    return browser, csrf.group(1)


def test_each_change_names_its_actor(server: ServerProcess, provision: Provisioner, db_url: str) -> None:
    tenant = provision.tenant()
    stranger = provision.tenant()
    domain = tenant.domain
    admin_prefix = tenant.api_key[:KEY_PREFIX_LENGTH]
    manager = make_key(db_url, tenant, Scope.MANAGE)
    prefix = manager[:KEY_PREFIX_LENGTH]
    url = "https://example.com/audited"

    with client(server, manager) as api, client(server, manager, tenant.username) as kirim:
        # Mailgun v3, v4 and v1
        assert api.post(f"/v3/domains/{domain}/webhooks", data={"id": "clicked", "url": url}).status_code == 200
        assert api.delete(f"/v3/domains/{domain}/webhooks/clicked").status_code == 200
        assert api.post(f"/v4/domains/{domain}/webhooks", data={"url": url, "event_types": "opened"}).status_code == 200
        created = api.post("/v1/webhooks", data={"url": url, "event_types": "delivered"})
        assert created.status_code == 200
        group = created.json()["webhook_id"]
        assert api.delete(f"/v1/webhooks/{group}").status_code == 204
        # Kirim
        row = kirim.post(f"/api/domains/{domain}/webhooks", json={"type": "bounced", "url": url})
        assert row.status_code == 201, row.text
        guid = row.json()["data"]["webhook_guid"]
        assert kirim.put(f"/api/domains/{domain}/webhooks/{guid}", json={"url": url + "2"}).status_code == 200
        # native
        assert api.post(f"/v1/subscriptions/{guid}/enable").status_code == 200
        assert kirim.delete(f"/api/domains/{domain}/webhooks/{guid}").status_code == 200
        # refused and failed changes leave no entry
        assert api.post("/v5/accounts/http_signing_key").status_code == 403
        assert api.post(f"/v3/domains/{domain}/webhooks", data={"id": "nonsense", "url": url}).status_code == 400
        assert api.get("/v1/audit").status_code == 403  # the log is the account owner's: admin keys
    with client(server, tenant.api_key) as admin:
        assert admin.post("/v5/accounts/http_signing_key").status_code == 200
    cli_key = subprocess_json(db_url, "keys", "create", tenant.username, "--scope", "read", "--json")
    assert "revoked 1 key" in run_cli(db_url, "keys", "revoke", cli_key["prefix"])
    browser, csrf = signed_in(server, tenant.api_key)
    try:
        made = browser.post("/ui/settings/keys", data={"csrf": csrf, "scope": "ingest", "domain": domain})
        assert made.status_code == 200
        assert browser.post(f"/ui/domains/{domain}/webhooks",
                            data={"csrf": csrf, "event_type": "delivered", "url": url,
                                  "payload_format": "mailgun"}).status_code in (200, 303)
        page = browser.get("/ui/audit")
        assert page.status_code == 200
    finally:
        browser.close()

    log = whole_log(server, tenant.api_key, limit=3)
    assert log == whole_log(server, tenant.api_key, limit=500)
    assert all(set(item) == {"at", "actor", "action", "target"} for item in log)
    assert [item["at"] for item in log] == sorted((item["at"] for item in log), reverse=True)
    seen = [(item["actor"], item["action"]) for item in reversed(log)]
    dashboard = f"dashboard:{tenant.username}"
    assert seen == [
        (prefix, "webhook.created"),  # v3 POST
        (prefix, "webhook.deleted"),  # v3 DELETE
        (prefix, "webhook.created"),  # v4 POST
        (prefix, "webhook.created"),  # v1 POST: one row per event type
        (prefix, "webhook.deleted"),  # v1 DELETE
        (prefix, "webhook.created"),  # Kirim POST
        (prefix, "webhook.changed"),  # Kirim PUT
        (prefix, "subscription.enabled"),
        (prefix, "webhook.deleted"),  # Kirim DELETE
        (admin_prefix, "signing_key.rotated"),
        ("cli", "key.created"),
        ("cli", "key.revoked"),
        (dashboard, "key.created"),
        (dashboard, "webhook.created"),
    ], seen
    targets = [item["target"] for item in reversed(log)]
    assert url in targets[0] and "clicked" in targets[0]
    assert guid in targets[6] and url + "2" in targets[6]
    assert cli_key["prefix"] in targets[10] and "read" in targets[10]
    assert "ingest" in targets[12] and domain in targets[12]
    assert all(tenant.api_key not in t and manager not in t and cli_key["api_key"] not in t for t in targets)
    # The dashboard's page lists the same entries.
    assert page.text.count('<tr data-action="') == len(log)
    assert prefix in page.text and "signing_key.rotated" in page.text

    # Another account sees none of it.
    assert whole_log(server, stranger.api_key, limit=100) == []


def test_audit_route_inputs_and_openapi(server: ServerProcess, provision: Provisioner) -> None:
    tenant = provision.tenant()
    with client(server, tenant.api_key) as api:
        for params in ({"limit": "0"}, {"limit": "501"}, {"cursor": "abc"}, {"cursor": "\x00"}):
            response = api.get("/v1/audit", params=params)
            assert response.status_code == 422, (params, response.text)
        assert api.get("/v1/audit", params={"cursor": "1"}).json() == {"items": [], "next_cursor": None}
    with httpx.Client(base_url=server.base_url) as anonymous:
        assert anonymous.get("/v1/audit").status_code == 401
        spec = anonymous.get("/openapi.json").json()
    operation = spec["paths"]["/v1/audit"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/AuditPage")
    assert {"limit", "cursor"} <= {p["name"] for p in operation["parameters"]}
    entry = spec["components"]["schemas"]["AuditEntry"]
    assert set(entry["required"]) == {"at", "actor", "action", "target"}
