"""Private targets are refused without the allow setting: at subscribe time by every dialect, and at
send time (a row written past the subscribe check, e.g. before the setting changed) — the delivery is
visible as failed with the reason, and nothing reaches the receiver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from mailhooks.core.models import NewWebhook
from mailhooks.db.store import Store
from tests.support import Provisioner, Receiver, ServerProcess, Tenant


@pytest.fixture(scope="module", params=["reqwest", "aiohttp"])
def strict_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[ServerProcess]:
    """Both senders (MAILHOOKS_HTTP_CLIENT) keep the send-time check."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ssrf') / 'mailhooks.db'}"
    proc = ServerProcess(url, log_dir=tmp_path_factory.mktemp("ssrf-logs"),
                         env={"MAILHOOKS_RATE_LIMIT": "100000/minute", "MAILHOOKS_POLL_INTERVAL": "0.1",
                              "MAILHOOKS_HTTP_CLIENT": request.param})
    proc.start()
    yield proc
    proc.stop()


def test_private_targets_refused_at_subscribe_time(strict_server: ServerProcess, receiver: Receiver) -> None:
    tenant = Provisioner(strict_server.db_url).tenant()
    for url in (f"http://localhost:{receiver.port}/x", f"http://127.0.0.1:{receiver.port}/x", "http://10.1.2.3/x"):
        r = httpx.post(f"{strict_server.base_url}/v3/domains/{tenant.domain}/webhooks", auth=("api", tenant.api_key),
                       data={"id": "delivered", "url": url})
        assert r.status_code == 400, (url, r.text)
        r = httpx.post(f"{strict_server.base_url}/api/domains/{tenant.domain}/webhooks",
                       auth=(tenant.username, tenant.api_key), json={"type": "delivered", "url": url})
        assert r.status_code == 422 and "url" in r.json()["errors"], (url, r.text)


def _insert_webhook(db_url: str, tenant: Tenant, url: str) -> None:
    async def work() -> None:
        store = Store(db_url)
        try:
            account = await store.get_account_by_username(tenant.username)
            domain = await store.get_domain_by_name(tenant.domain)
            assert account and domain
            await store.change_webhooks(add=[NewWebhook(account.id, domain.id, "delivered", url, "mailgun")])
        finally:
            await store.close()

    asyncio.run(work())


def _deliveries_once_failed(server: ServerProcess, tenant: Tenant, urls: list[str]) -> list[dict[str, object]]:
    """Subscribe ``urls`` past the subscribe-time check, emit one event, and return its deliveries once
    every URL has one and all are ``failed`` (or whatever they are after 15 s)."""
    for url in urls:
        _insert_webhook(server.db_url, tenant, url)
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    r = httpx.post(f"{server.base_url}/v1/events", headers=headers,
                   json={"domain": tenant.domain, "event": "delivered", "recipient": "a@b.example"})
    assert r.status_code == 202
    event_id = r.json()["ids"][0]
    deadline = time.monotonic() + 15
    items: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        items = httpx.get(f"{server.base_url}/v1/deliveries", params={"event_id": event_id},
                          headers=headers).json()["items"]
        if len(items) == len(urls) and all(d["status"] == "failed" for d in items):
            break
        time.sleep(0.1)
    return items


def test_private_targets_refused_at_send_time(strict_server: ServerProcess, receiver: Receiver) -> None:
    tenant = Provisioner(strict_server.db_url).tenant()
    urls = [receiver.url("/by-name").replace("127.0.0.1", "localhost"), receiver.url("/by-ip")]
    items = _deliveries_once_failed(strict_server, tenant, urls)
    assert sorted(str(d["url"]) for d in items) == sorted(urls)
    for item in items:
        assert item["status"] == "failed", item
        assert "refused" in str(item["last_error"]) and "127.0.0.1" in str(item["last_error"]), item
    assert receiver.on("/by-name") == [] and receiver.on("/by-ip") == []


# IPv6 that carries a refused IPv4 address (NAT64, 6to4, IPv4-compatible, SIIT) and site-local IPv6: a
# gateway on the way forwards them to the IPv4 address, e.g. the metadata address 169.254.169.254.
EMBEDDED = ["http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b:1::a9fe:a9fe]/", "http://[2002:a9fe:a9fe::1]/",
            "http://[::a9fe:a9fe]/", "http://[::ffff:0:a9fe:a9fe]/", "http://[fec0::1]/"]

# URLs no sender can send, or that one parser reads with another host than the other.
UNSENDABLE = ["http://127.0.0.1\\@example.com/", "http://xn--/", "http://exa%6dple.com/", "http://127.1/",
              "http://-bad.example/", "http://[fe80::1%25eth0]/"]


def _subscribe_both(server: ServerProcess, tenant: Tenant, url: str) -> tuple[httpx.Response, httpx.Response]:
    mailgun = httpx.post(f"{server.base_url}/v3/domains/{tenant.domain}/webhooks", auth=("api", tenant.api_key),
                         data={"id": "delivered", "url": url})
    kirim = httpx.post(f"{server.base_url}/api/domains/{tenant.domain}/webhooks",
                       auth=(tenant.username, tenant.api_key), json={"type": "delivered", "url": url})
    return mailgun, kirim


@pytest.mark.parametrize("url", EMBEDDED)
def test_ipv6_carrying_refused_ipv4_is_refused_at_subscribe_time(strict_server: ServerProcess, url: str) -> None:
    tenant = Provisioner(strict_server.db_url).tenant()
    mailgun, kirim = _subscribe_both(strict_server, tenant, url)
    assert mailgun.status_code == 400, mailgun.text
    assert mailgun.json()["message"].startswith("The url resolves to a private or loopback address ("), mailgun.text
    assert kirim.status_code == 422 and kirim.json()["success"] is False, kirim.text
    assert kirim.json()["errors"]["url"][0].startswith("The url resolves to a private or loopback address (")


@pytest.mark.parametrize("url", UNSENDABLE)
def test_urls_that_can_never_be_sent_are_refused_at_subscribe_time(strict_server: ServerProcess, url: str) -> None:
    tenant = Provisioner(strict_server.db_url).tenant()
    mailgun, kirim = _subscribe_both(strict_server, tenant, url)
    assert (mailgun.status_code, mailgun.json()) == (400, {"message": "The url must be a valid URL."}), url
    assert kirim.status_code == 422, kirim.text
    assert kirim.json() == {"success": False, "message": "Validation failed.",
                            "errors": {"url": ["The url must be a valid URL."]}}, kirim.text
    assert httpx.get(f"{strict_server.base_url}/v3/domains/{tenant.domain}/webhooks",
                     auth=("api", tenant.api_key)).json()["webhooks"] == {}


def test_ipv6_carrying_loopback_is_refused_at_send_time(strict_server: ServerProcess, receiver: Receiver) -> None:
    """Rows written past the subscribe check go nowhere: failed after one attempt, with the reason."""
    tenant = Provisioner(strict_server.db_url).tenant()
    urls = [f"http://[{address}]:{receiver.port}/embedded"
            for address in ("64:ff9b::7f00:1", "2002:7f00:1::1", "::7f00:1", "::ffff:0:7f00:1")]
    items = _deliveries_once_failed(strict_server, tenant, urls)
    assert sorted(str(d["url"]) for d in items) == sorted(urls)
    for item in items:
        assert (item["status"], item["attempt_count"]) == ("failed", 1), item
        assert str(item["last_error"]).startswith("refused: The url resolves to a private or loopback address ("), item
    assert receiver.on("/embedded") == []
