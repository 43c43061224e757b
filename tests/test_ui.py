"""The web dashboard (/ui), end to end: Debian's headless Chromium (driven by Playwright) against a real
``mailhooks serve`` process and a real receiver on 127.0.0.1, plus a tenancy test over HTTP.

SQLite only: the storage code under the dashboard is shared with the APIs and tested on both
backends elsewhere. Under ``CI=true`` a missing browser fails these tests instead of skipping them.
Screenshots of each main page at 1280x800 and 390x844 go to ``screenshots/`` (git-ignored; ``docs/screenshots/``
holds a copy for the README).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, update

from mailhooks.core.accounts import add_domain, create_account
from mailhooks.core.events import build_events, parse_events
from mailhooks.core.targets import TargetPolicy
from mailhooks.core.webhooks import Subscriptions
from mailhooks.db import schema
from mailhooks.db.dashboard import Dashboard, DeliveryFilter
from mailhooks.db.intake import IntakeStore
from mailhooks.db.migrate import upgrade
from mailhooks.db.store import Store
from tests.support import (
    ROOT,
    Provisioner,
    Receiver,
    ServerProcess,
    Tenant,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IN_CI = os.environ.get("CI", "").lower() == "true"
SHOTS = ROOT / "screenshots"
SIZES = ((1280, 800), (390, 844))


def _browser_missing(why: str) -> None:
    if IN_CI:
        pytest.fail(f"{why}, and CI=true: the browser tests must run (.ci/run installs chromium)")
    pytest.skip(why)


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ui_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('ui') / 'mailhooks.db'}"


@pytest.fixture(scope="module")
def dashboard(ui_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(ui_db, log_dir=tmp_path_factory.mktemp("ui-logs"), env={
        "MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1",
        "MAILHOOKS_RETRY_SCHEDULE": "0.3,0.3",  # three attempts, then failed, within a second
        "MAILHOOKS_DELIVERY_TIMEOUT": "3",
        "MAILHOOKS_POLL_INTERVAL": "0.1",
        "MAILHOOKS_RATE_LIMIT": "100000/minute",
    })
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ui_accounts(ui_db: str, dashboard: ServerProcess) -> Provisioner:
    return Provisioner(ui_db)


@pytest.fixture()
def browser() -> Iterator[Any]:
    """Function-scoped: while Playwright's sync API is running, no other code here may start an event loop."""
    if not os.path.exists(CHROMIUM):
        _browser_missing(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_missing("the playwright package is not installed")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


# ---------------------------------------------------------------------- helpers
def new_tenant(ui_accounts: Provisioner, prefix: str) -> Tenant:
    """Provisioning runs its own event loop: in a thread, beside Playwright's (sync API) loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(ui_accounts.tenant, 1, prefix).result()


def emit(dashboard: ServerProcess, tenant: Tenant, event: str, event_id: str, **fields: Any) -> None:
    body = {"id": event_id, "domain": tenant.domain, "event": event, "recipient": "bob@example.com", **fields}
    response = httpx.post(f"{dashboard.base_url}/v1/events", json=body,
                          headers={"Authorization": f"Bearer {tenant.api_key}"})
    assert response.status_code == 202, response.text


def eventually(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def shoot(context: Any, base_url: str, name: str, path: str) -> None:
    """Screenshots of ``path`` at both sizes (the session cookie is shared through the storage state)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in SIZES:
        ctx = context.browser.new_context(viewport={"width": width, "height": height},
                                          storage_state=context.storage_state(), base_url=base_url)
        page = ctx.new_page()
        page.goto(path)
        # The page never scrolls sideways: responsive tables scroll inside their own box.
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{path} overflows {width}px by {overflow}px"
        page.screenshot(path=str(SHOTS / f"{name}-{width}x{height}.png"), full_page=True)
        ctx.close()


def delivery_row(page: Any, event_id: str) -> Any:
    return page.locator("#deliveries tbody tr", has_text=event_id)


def wait_status(page: Any, event_id: str, status: str, timeout: float = 15.0) -> str:
    """Reload the deliveries list until the delivery of ``event_id`` shows ``status``; return its id."""
    def check() -> bool:
        page.goto(f"/ui/deliveries?event=&status={status}")
        return bool(delivery_row(page, event_id).count())

    eventually(check, timeout, f"{event_id} to be {status}")
    return str(delivery_row(page, event_id).first.get_attribute("data-id"))


def sign_in_http(dashboard: ServerProcess, key: str) -> tuple[httpx.Client, str]:
    """A signed-in HTTP client and its CSRF token."""
    client = httpx.Client(base_url=dashboard.base_url)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
    assert token is not None
    response = client.post("/ui/login", data={"csrf": token.group(1), "api_key": key, "next": "/ui"})
    assert response.status_code == 303 and response.headers["location"] == "/ui", response.text
    page = client.get("/ui/settings")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return client, csrf.group(1)


# ---------------------------------------------------------------------- the on-call walk-through
def test_dashboard_end_to_end(dashboard: ServerProcess, ui_accounts: Provisioner, receiver: Receiver,
                              browser: Any) -> None:
    tenant = new_tenant(ui_accounts, "ui")
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=dashboard.base_url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    # Every stylesheet, script and icon loads (the pages' own statuses are asserted where they matter).
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if r.request.resource_type != "document" and r.status >= 400 else None)

    # Signed out: every page leads to the sign-in form, which refuses a wrong key.
    page.goto("/ui/deliveries")
    assert page.url.endswith("/ui/login?next=%2Fui%2Fdeliveries")
    shoot(context, dashboard.base_url, "login", "/ui/login")
    page.fill("#api_key", "mh_not-a-key")
    page.click("button:has-text('Sign in')")
    assert "not valid" in page.text_content(".flash-error")
    page.fill("#api_key", tenant.api_key)
    page.click("button:has-text('Sign in')")
    assert page.url.endswith("/ui/deliveries")
    cookie = next(c for c in context.cookies() if c["name"] == "mh_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    # Create a webhook on the domain (to the local receiver) and send it a test event.
    hook_url = receiver.url("/ui-hook")
    page.goto("/ui")
    page.click(f"text={tenant.domain}")
    page.select_option("#new-webhook select[name=event_type]", "delivered")
    page.fill("#new-webhook input[name=url]", hook_url)
    page.click("#new-webhook button[type=submit]")
    assert "Webhook created" in page.text_content(".flash")
    hook = page.locator("#webhooks li", has_text=hook_url)
    hook.locator("button:has-text('Send test')").click()
    assert re.search(r"answered HTTP 200 in [\d.]+ ms", page.text_content(".flash") or "")
    receiver.wait_for("/ui-hook", 1)

    # Emit an event and see it delivered.
    emit(dashboard, tenant, "delivered", "evt-ok-1")
    wait_status(page, "evt-ok-1", "succeeded")

    # The receiver fails: the delivery is retried on the (short) schedule, then failed; every attempt shows.
    receiver.script("/ui-hook", [500])
    emit(dashboard, tenant, "delivered", "evt-fail-1")
    emit(dashboard, tenant, "delivered", "evt-fail-2")
    failed_id = wait_status(page, "evt-fail-1", "failed")
    wait_status(page, "evt-fail-2", "failed")
    page.goto(f"/ui/deliveries/{failed_id}")
    attempts = page.locator("#attempts li")
    assert attempts.count() == 3
    assert all("HTTP 500" in text for text in attempts.all_text_contents())
    headers = attempts.first.locator("table.headers").text_content() or ""
    assert "webhook-signature" in headers and "v1," in headers and "webhook-id" in headers
    assert tenant.signing_key not in page.content()  # signatures shown, the key that made them never
    assert '"evt-fail-1"' in (page.text_content("#payload") or "")
    shoot(context, dashboard.base_url, "delivery", f"/ui/deliveries/{failed_id}")

    # Fix the receiver, retry that one, see success.
    receiver.script("/ui-hook", [200])
    page.click("#retry button")
    assert "Queued" in page.text_content(".flash")

    def retried() -> bool:
        page.goto(f"/ui/deliveries/{failed_id}")
        return (page.text_content("h1 .badge") or "").strip() == "succeeded"

    eventually(retried, what="the retried delivery to succeed")
    assert "HTTP 200" in page.locator("#attempts li").first.text_content()
    assert page.locator("#attempts li").count() == 4

    # Recover the other failed one (all failed since a time) from the deliveries page.
    page.goto("/ui/deliveries")
    page.fill("#recover input[name=since]", time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 600)))
    page.click("#recover button")
    assert "1 failed delivery" in page.text_content(".flash")
    wait_status(page, "evt-fail-2", "succeeded")

    # Edit a webhook's URL and type, then delete it.
    page.goto(f"/ui/domains/{tenant.domain}")
    page.select_option("#new-webhook select[name=event_type]", "opened")
    page.fill("#new-webhook input[name=url]", receiver.url("/second"))
    page.click("#new-webhook button[type=submit]")
    page.locator("#webhooks li", has_text="/second").locator("a:has-text('Edit')").click()
    page.select_option("#edit-webhook select[name=event_type]", "clicked")
    page.fill("#edit-webhook input[name=url]", receiver.url("/second-edited"))
    page.click("#edit-webhook button[type=submit]")
    edited = page.locator("#webhooks li", has_text="/second-edited")
    assert "clicked" in edited.text_content()
    # A 410 disables it, with the reason shown; re-enable it.
    receiver.script("/second-edited", [410])
    emit(dashboard, tenant, "clicked", "evt-gone-1", url="https://example.com/")
    wait_status(page, "evt-gone-1", "rejected")
    page.goto(f"/ui/domains/{tenant.domain}")
    edited = page.locator("#webhooks li", has_text="/second-edited")
    assert "Disabled" in edited.text_content() and "410" in edited.text_content()
    edited.locator("button:has-text('Re-enable')").click()
    assert "re-enabled" in page.text_content(".flash")
    assert "Disabled" not in page.locator("#webhooks li", has_text="/second-edited").text_content()
    page.locator("#webhooks li", has_text="/second-edited").locator("button:has-text('Delete')").click()
    assert "Webhook deleted" in page.text_content(".flash")
    assert page.locator("#webhooks li", has_text="/second-edited").count() == 0

    # A few more events so that the table, the chart and the screenshots have something to show.
    receiver.script("/ui-hook", [200])
    for i in range(6):
        emit(dashboard, tenant, "delivered", f"evt-bulk-{i}")
    wait_status(page, "evt-bulk-5", "succeeded")
    # And a receiver that is down, so that the pages show failures too.
    page.goto(f"/ui/domains/{tenant.domain}")
    page.select_option("#new-webhook select[name=event_type]", "opened")
    page.fill("#new-webhook input[name=url]", receiver.url("/down"))
    page.select_option("#new-webhook select[name=payload_format]", "kirim")
    page.click("#new-webhook button[type=submit]")
    receiver.script("/down", [503])
    for i in range(3):
        emit(dashboard, tenant, "opened", f"evt-open-{i}")
    wait_status(page, "evt-open-2", "failed")

    # Account-level webhooks: create, test, edit, delete.
    page.goto("/ui/webhooks")
    page.fill("#new-account-webhook input[name=url]", receiver.url("/account"))
    page.check("#new-account-webhook input[value=complained]")
    page.check("#new-account-webhook input[value=permanent_fail]")
    page.fill("#new-account-webhook input[name=description]", "abuse desk")
    page.click("#new-account-webhook button[type=submit]")
    group = page.locator("#account-webhooks li", has_text="/account")
    assert "complained" in group.text_content() and "abuse desk" in group.text_content()
    group.locator("button:has-text('Send test')").click()
    assert "answered HTTP 200" in page.text_content(".flash")
    shoot(context, dashboard.base_url, "account-webhooks", "/ui/webhooks")
    page.locator("#account-webhooks li", has_text="/account").locator("a:has-text('Edit')").click()
    page.uncheck("#edit-account-webhook input[value=permanent_fail]")
    page.click("#edit-account-webhook button[type=submit]")
    group = page.locator("#account-webhooks li", has_text="/account")
    assert "permanent_fail" not in group.text_content()
    group.locator("button:has-text('Delete')").click()
    assert page.locator("#account-webhooks li").count() == 0

    # Pages with data: overview (health + chart), domain, deliveries (filtered and paged).
    page.goto("/ui")
    row = page.locator("#domains tbody tr", has_text=tenant.domain)
    assert row.locator("td").nth(1).text_content().strip() == "9"  # ok-1, the retried and the recovered one, 6 bulk
    assert row.locator("td").nth(2).text_content().strip() == "3"  # the opened ones
    assert page.locator("#chart rect.bar-ok").count() >= 1
    assert page.locator("#chart rect.bar-fail").count() >= 1
    shoot(context, dashboard.base_url, "overview", "/ui")
    shoot(context, dashboard.base_url, "domain", f"/ui/domains/{tenant.domain}")
    shoot(context, dashboard.base_url, "deliveries", "/ui/deliveries")
    page.goto("/ui/deliveries?status=rejected")
    assert page.locator("#deliveries tbody tr").count() == 1
    page.goto(f"/ui/domains/{tenant.domain}")
    assert "Failing since" in page.locator("#webhooks li", has_text="/down").text_content()
    page.goto("/ui/deliveries?event=delivered")
    assert page.locator("#deliveries tbody tr").count() == 9  # 25 per page: all of them
    page.goto("/ui/deliveries?event=delivered&status=succeeded")
    assert page.locator("#deliveries tbody tr").count() == 9

    # Signing key: masked, revealed on click, rotated. API keys: a new one shown once, then revoked.
    page.goto("/ui/settings")
    assert tenant.signing_key not in page.content()
    shoot(context, dashboard.base_url, "keys", "/ui/settings")
    page.click("button:has-text('Reveal')")
    assert page.text_content("#signing-key") == tenant.signing_key
    assert (page.text_content("#whsec") or "").startswith("whsec_")
    assert page.locator("#previous-key").count() == 0
    page.click("#rotate button")
    assert "rotated" in page.text_content(".flash")
    # The previous key keeps signing for the overlap: the page says until when, and never shows it.
    assert "until" in (page.text_content("#previous-key") or "")
    assert tenant.signing_key not in page.content()
    page.click("button:has-text('Reveal')")
    assert page.text_content("#signing-key") not in (tenant.signing_key, "")
    assert tenant.signing_key not in page.content()
    page.click("#create-key button")
    new_key = (page.text_content("#new-key") or "").strip()
    assert new_key.startswith("mh_")
    new_auth = {"Authorization": f"Bearer {new_key}"}
    assert httpx.get(f"{dashboard.base_url}/v1/signing-key", headers=new_auth).status_code == 200
    page.goto("/ui/settings")
    assert new_key not in page.content()  # shown once
    page.locator("#api-keys tr", has_text=new_key[:12]).locator("button:has-text('Revoke')").click()
    assert "revoked" in page.text_content(".flash")
    assert httpx.get(f"{dashboard.base_url}/v1/signing-key", headers=new_auth).status_code == 401

    # Sign out: the pages are closed again.
    page.click("header button:has-text('Sign out')")
    assert "signed out" in page.text_content("main")
    page.goto("/ui/settings")
    assert "/ui/login" in page.url
    assert not errors, errors
    context.close()


# ---------------------------------------------------------------------- tenancy
def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(dashboard: ServerProcess,
                                                                ui_accounts: Provisioner) -> None:
    tenant = new_tenant(ui_accounts, "so")
    client, csrf = sign_in_http(dashboard, tenant.api_key)
    copied = {name: value for name, value in client.cookies.items() if name == "mh_session"}
    assert copied
    other, _ = sign_in_http(dashboard, tenant.api_key)  # another sign-in with the same key (another browser)
    with httpx.Client(base_url=dashboard.base_url, cookies=copied) as thief:
        assert thief.get("/ui/settings").status_code == 200
        out = client.post("/ui/logout", data={"csrf": csrf})
        assert out.status_code == 303 and out.headers["location"] == "/ui/login?signed_out=1"
        for signed_out in (thief, client):
            page = signed_out.get("/ui/settings")
            assert page.status_code == 303 and page.headers["location"].startswith("/ui/login"), page.status_code
        # signing out one session leaves the others alone
        assert other.get("/ui/settings").status_code == 200
    client.close()
    other.close()


def test_docs_load_nothing_from_another_host(dashboard: ServerProcess, browser: Any) -> None:
    """/docs renders Swagger UI with every request going to this server (it used to load it from a CDN)."""
    page = browser.new_page()
    hosts: set[str] = set()
    page.on("request", lambda req: hosts.add(req.url.split("/")[2]))
    page.goto(f"{dashboard.base_url}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=15000)
    assert "mailhooks" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".opblock").count() > 10  # the operations of /openapi.json are shown
    assert hosts == {f"127.0.0.1:{dashboard.port}"}
    page.close()


def test_no_page_or_form_crosses_accounts(dashboard: ServerProcess, ui_accounts: Provisioner,
                                          receiver: Receiver) -> None:
    """Signed in as A, every URL and forged form naming B's domain, webhooks, deliveries or keys is refused."""
    a, b = new_tenant(ui_accounts, "ua"), new_tenant(ui_accounts, "ub")
    b_auth = {"Authorization": f"Bearer {b.api_key}"}
    # B's data: a domain webhook (Kirim API), an account-level webhook (Mailgun v1), a failed delivery.
    created = httpx.post(f"{dashboard.base_url}/api/domains/{b.domain}/webhooks", auth=(b.username, b.api_key),
                         json={"type": "delivered", "url": receiver.url("/b-hook")})
    assert created.status_code in (200, 201), created.text
    b_guid = created.json()["data"]["webhook_guid"]
    group = httpx.post(f"{dashboard.base_url}/v1/webhooks", auth=("api", b.api_key),
                       data={"url": receiver.url("/b-account"), "event_types": "complained"})
    assert group.status_code == 200, group.text
    b_group = group.json()["webhook_id"]
    receiver.script("/b-hook", [500])
    emit(dashboard, b, "delivered", "b-secret-event")

    def b_failed() -> list[dict[str, Any]]:
        items = httpx.get(f"{dashboard.base_url}/v1/deliveries", params={"status": "failed"},
                          headers=b_auth).json()["items"]
        return [item for item in items if item["event_id"] == "b-secret-event"]

    eventually(lambda: bool(b_failed()), what="B's delivery to fail")
    b_delivery = b_failed()[0]["id"]
    b_prefix = b.api_key[:12]

    client, csrf = sign_in_http(dashboard, a.api_key)
    b_names = (b.domain, b_guid, b_group, "b-secret-event", receiver.url("/b-hook"))

    # Pages: B's things are "not found" (never forbidden: that would confirm they exist).
    for path in (f"/ui/domains/{b.domain}", f"/ui/domains/{b.domain}/webhooks/{b_guid}",
                 f"/ui/domains/{a.domain}/webhooks/{b_guid}", f"/ui/webhooks/{b_group}",
                 f"/ui/deliveries/{b_delivery}", f"/ui/deliveries?domain={b.domain}"):
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert "text/html" in response.headers["content-type"]
        assert not any(name in response.text for name in b_names), path
    for path in (f"/ui/deliveries?webhook={b_guid}", "/ui/deliveries", "/ui", "/ui/webhooks", "/ui/settings"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert not any(name in response.text for name in b_names), path
        assert b_prefix not in response.text

    # Forged forms with A's own valid CSRF token, aimed at B's things.
    receiver.script("/b-hook", [200])
    before = len(receiver.on("/b-hook"))
    forged = {
        f"/ui/domains/{b.domain}/webhooks": {"event_type": "opened", "url": receiver.url("/a-into-b")},
        f"/ui/domains/{b.domain}/webhooks/{b_guid}": {"event_type": "opened", "url": receiver.url("/stolen")},
        f"/ui/domains/{a.domain}/webhooks/{b_guid}": {"event_type": "opened", "url": receiver.url("/stolen")},
        f"/ui/domains/{b.domain}/webhooks/{b_guid}/delete": {},
        f"/ui/domains/{a.domain}/webhooks/{b_guid}/delete": {},
        f"/ui/domains/{b.domain}/webhooks/{b_guid}/test": {},
        f"/ui/domains/{a.domain}/webhooks/{b_guid}/enable": {},
        f"/ui/webhooks/{b_group}": {"url": receiver.url("/stolen"), "event_types": "complained"},
        f"/ui/webhooks/{b_group}/delete": {},
        f"/ui/webhooks/{b_group}/test": {},
        f"/ui/webhooks/{b_group}/enable": {},
        f"/ui/deliveries/{b_delivery}/retry": {},
        "/ui/deliveries/recover": {"domain": b.domain, "since": "0"},
        f"/ui/settings/keys/{b_prefix}/revoke": {},
    }
    for path, fields in forged.items():
        response = client.post(path, data={"csrf": csrf, **fields})
        assert response.status_code == 404, (path, response.status_code, response.text[:200])

    # Nothing of B's changed: its webhooks, its failed delivery, its key; nothing was sent to B's URL.
    kirim = httpx.get(f"{dashboard.base_url}/api/domains/{b.domain}/webhooks/{b_guid}", auth=(b.username, b.api_key))
    assert kirim.status_code == 200 and kirim.json()["data"]["url"] == receiver.url("/b-hook")
    assert kirim.json()["data"]["type"] == "delivered"
    v1 = httpx.get(f"{dashboard.base_url}/v1/webhooks/{b_group}", auth=("api", b.api_key))
    assert v1.status_code == 200 and receiver.url("/b-account") in v1.text
    detail = httpx.get(f"{dashboard.base_url}/v1/deliveries/{b_delivery}", headers=b_auth).json()
    assert detail["status"] == "failed" and detail["attempt_count"] == 3
    assert len(receiver.on("/b-hook")) == before
    assert not receiver.on("/stolen") and not receiver.on("/a-into-b")
    assert httpx.get(f"{dashboard.base_url}/v1/signing-key", headers=b_auth).status_code == 200

    # Forms without A's token, with B's token, or from another origin are refused (403), and change nothing.
    b_client, b_csrf = sign_in_http(dashboard, b.api_key)
    assert b_csrf != csrf
    a_hook = client.post(f"/ui/domains/{a.domain}/webhooks",
                         data={"csrf": csrf, "event_type": "delivered", "url": receiver.url("/a-hook")})
    assert a_hook.status_code == 303
    for data, headers in (({}, {}), ({"csrf": "x"}, {}), ({"csrf": b_csrf}, {}),
                          ({"csrf": csrf}, {"Origin": "http://evil.example"})):
        response = client.post(f"/ui/domains/{a.domain}/webhooks", headers=headers,
                               data={**data, "event_type": "opened", "url": receiver.url("/csrf")})
        assert response.status_code == 403, (data, headers)
    assert "/csrf" not in client.get(f"/ui/domains/{a.domain}").text
    assert client.post("/ui/logout", data={"csrf": b_csrf}).status_code == 403

    # A session ends when its key is revoked, and a tampered cookie is no session at all.
    assert b_client.post(f"/ui/settings/keys/{b_prefix}/revoke", data={"csrf": b_csrf}).status_code == 303
    assert b_client.get("/ui").status_code == 303
    forged_cookie = httpx.Client(base_url=dashboard.base_url, cookies={"mh_session": "e30.forged"})
    assert forged_cookie.get("/ui").headers["location"].startswith("/ui/login")
    # The API paths keep their JSON errors.
    assert client.get("/v1/deliveries/999999").headers["content-type"].startswith("application/json")


# ---------------------------------------------------------------------- the dashboard's own queries, both backends
async def _dashboard_scenario(url: str) -> None:
    store = Store(url)
    try:
        now = (int(time.time()) // 60) * 60 + 30.0  # mid-minute: each attempt below falls clearly in one minute
        mine = await create_account(store, f"dash{uuid.uuid4().hex[:8]}")
        other = await create_account(store, f"other{uuid.uuid4().hex[:8]}")
        dom = await add_domain(store, mine.account, f"dash-{uuid.uuid4().hex[:8]}.example")
        other_dom = await add_domain(store, other.account, f"other-{uuid.uuid4().hex[:8]}.example")
        subs = Subscriptions(store, TargetPolicy(True, ()))
        hook = await subs.create_row(mine.account, dom, "delivered", "http://127.0.0.1:9/a", "mailgun")
        await subs.create_row(mine.account, dom, "opened", "http://127.0.0.1:9/b", "kirim")
        await subs.create_row(other.account, other_dom, "delivered", "http://127.0.0.1:9/c", "mailgun")
        intake = IntakeStore(store)
        items = [{"id": f"e{i}", "domain": dom.name, "event": "delivered" if i % 3 else "opened",
                  "recipient": "x@example.com"} for i in range(30)]
        await intake.ingest(build_events(mine.account, parse_events(items)[0], {dom.name: dom}))
        await intake.ingest(build_events(other.account, parse_events(
            [{"id": "o1", "domain": other_dom.name, "event": "delivered", "recipient": "y@example.com"}])[0],
            {other_dom.name: other_dom}))
        d, a = schema.deliveries, schema.attempts
        async with store.write() as conn:
            ids = [row.id for row in await conn.execute(
                select(d.c.id).where(d.c.account_id == mine.account.id).order_by(d.c.id))]
            # 20 succeeded (one 200 each), 5 failed (two 500s each), 5 left pending.
            await conn.execute(update(d).where(d.c.id.in_(ids[:20])).values(status="succeeded", attempts=1))
            await conn.execute(update(d).where(d.c.id.in_(ids[20:25])).values(status="failed", attempts=2))
            rows = [{"delivery_id": i, "number": 1, "started_at": now - 120, "duration_ms": 10.0, "status_code": 200,
                     "request_headers": '{"webhook-id": "msg_x"}'} for i in ids[:20]]
            rows += [{"delivery_id": i, "number": n, "started_at": now - 60 - 120 * (n - 1), "duration_ms": 30.0,
                      "status_code": 500, "request_headers": None} for i in ids[20:25] for n in (1, 2)]
            await conn.execute(insert(a), rows)
            await conn.execute(update(schema.webhooks).where(schema.webhooks.c.id == hook.id).values(failing_since=now))
        dash = Dashboard(store)

        health = (await dash.health(mine.account.id, [dom.id]))[dom.id]
        assert health.counts == {"succeeded": 20, "failed": 5, "pending": 5}
        assert health.failing_webhooks == 1 and health.oldest_pending_at is not None
        assert await dash.health(other.account.id, [dom.id]) == {dom.id: type(health)({}, 0, None)}

        minutes = await dash.per_minute(mine.account.id, now=now)
        assert len(minutes) == 60
        assert sum(m.ok for m in minutes) == 20 and sum(m.failed for m in minutes) == 10
        busy = [(m.ok, m.failed, m.avg_ms) for m in minutes if m.ok + m.failed]
        assert busy == [(0, 5, 30.0), (20, 0, 10.0), (0, 5, 30.0)]
        assert sum(m.ok + m.failed for m in await dash.per_minute(other.account.id, now=now)) == 0

        # Keyset pages, newest first, both directions, with filters; another account's rows never show.
        first = await dash.deliveries_page(mine.account.id, DeliveryFilter(), limit=12)
        assert [r["id"] for r in first.rows] == ids[::-1][:12] and first.newer is None and first.older == ids[-12]
        second = await dash.deliveries_page(mine.account.id, DeliveryFilter(), before=first.older, limit=12)
        assert [r["id"] for r in second.rows] == ids[::-1][12:24] and second.newer == ids[-13]
        back = await dash.deliveries_page(mine.account.id, DeliveryFilter(), after=second.newer, limit=12)
        assert [r["id"] for r in back.rows] == [r["id"] for r in first.rows] and back.newer is None
        last = await dash.deliveries_page(mine.account.id, DeliveryFilter(), before=ids[6], limit=12)
        assert [r["id"] for r in last.rows] == ids[5::-1] and last.older is None
        failed = await dash.deliveries_page(mine.account.id, DeliveryFilter(status="failed"), limit=50)
        assert [r["id"] for r in failed.rows] == ids[24:19:-1]
        opened = await dash.deliveries_page(mine.account.id, DeliveryFilter(event_type="opened"), limit=50)
        assert len(opened.rows) == 10 and {r["event_type"] for r in opened.rows} == {"opened"}
        by_hook = await dash.deliveries_page(mine.account.id, DeliveryFilter(webhook_guid=hook.guid), limit=50)
        assert len(by_hook.rows) == 20
        window = await dash.deliveries_page(mine.account.id, DeliveryFilter(since=now + 3600), limit=50)
        assert window.rows == []
        assert (await dash.deliveries_page(other.account.id, DeliveryFilter(domain_id=dom.id), limit=50)).rows == []

        found = await dash.delivery(mine.account.id, ids[0])
        assert found is not None
        detail, attempts, total = found
        assert detail["payload"]["id"] == "e0" and total == 1
        assert attempts[0]["request_headers"] == {"webhook-id": "msg_x"}
        assert await dash.delivery(other.account.id, ids[0]) is None

        domains, count = await dash.domains_page(mine.account.id, 0, 10)
        assert [x.name for x in domains] == [dom.name] and count == 1
        assert {w["guid"] for w in await dash.webhook_choices(other.account.id)}.isdisjoint(
            {w["guid"] for w in await dash.webhook_choices(mine.account.id)})
        keys, key_count = await dash.api_keys_page(mine.account.id, 0, 10)
        assert key_count == 1 and keys[0].prefix == mine.api_key[:12]
    finally:
        await store.close()


def test_dashboard_queries(empty_db: str) -> None:
    upgrade(empty_db)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _dashboard_scenario(empty_db)).result()
