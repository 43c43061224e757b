"""The pyreqwest sender (``MAILHOOKS_HTTP_CLIENT=reqwest``) keeps the aiohttp sender's guarantees.

A real aiohttp server on 127.0.0.1; ``PinnedSender`` against it: the policy refuses literals and names
alike before anything is sent, a name goes to the address the policy checked (with its own Host),
no redirect is followed, the deadline covers a silent body, at most ``EXCERPT_BYTES`` are read, a
proxy in the environment is ignored, and each failure has the kind the retry policy reads.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from mailhooks.config import HttpClient, Settings
from mailhooks.core.retry import FailureKind
from mailhooks.core.targets import TargetPolicy
from mailhooks.sending import PinnedSender, Sender, open_sender
from mailhooks.sending.sender import EXCERPT_BYTES

LOOPBACK = TargetPolicy(allowed_cidrs=[ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")])


class Server:
    def __init__(self) -> None:
        self.hits: list[tuple[str, str]] = []  # (path, Host header)
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append((request.path, request.headers.get("Host", "")))
        await request.read()
        if request.path == "/redirect":
            raise web.HTTPFound("/elsewhere")
        if request.path == "/huge":
            return web.Response(body=b"x" * 200_000)
        if request.path == "/silent":
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b"partial")
            await asyncio.sleep(30)
            return response
        return web.Response(text="ok", headers={"Retry-After": "7"})


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    yield state
    await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[PinnedSender]:
    made = PinnedSender(LOOPBACK, timeout=5.0)
    yield made
    await made.close()


def test_the_setting_chooses_the_client() -> None:
    assert Settings.from_env({}).http_client is HttpClient.REQWEST
    assert Settings.from_env({"MAILHOOKS_HTTP_CLIENT": "aiohttp"}).http_client is HttpClient.AIOHTTP
    with pytest.raises(ValueError):
        Settings.from_env({"MAILHOOKS_HTTP_CLIENT": "curl"})


async def test_open_sender_gives_either() -> None:
    for client, kind in ((HttpClient.AIOHTTP, Sender), (HttpClient.REQWEST, PinnedSender)):
        made = open_sender(client, LOOPBACK, timeout=1.0)
        assert isinstance(made, kind)
        await made.close()


async def test_a_name_goes_to_the_checked_address_with_its_own_host(server: Server, sender: PinnedSender) -> None:
    result = await sender.post(f"http://localhost:{server.port}/hook", b"{}", {"webhook-id": "m1"})
    assert result.status_code == 200 and result.excerpt == "ok" and result.retry_after == "7", result
    assert server.hits == [("/hook", f"localhost:{server.port}")]
    assert all(host == "localhost" for host, _ in sender.pinned), sender.pinned  # one client per pinned name


async def test_refused_targets_are_never_contacted(server: Server) -> None:
    strict = PinnedSender(TargetPolicy(), timeout=5.0)
    try:
        for url in (f"http://127.0.0.1:{server.port}/hook", f"http://localhost:{server.port}/hook",
                    f"http://LocalHost:{server.port}/hook", f"http://[::ffff:127.0.0.1]:{server.port}/hook"):
            result = await strict.post(url, b"{}", {})
            assert result.failure is FailureKind.REFUSED and result.error.startswith("refused: "), (url, result)
        # The name as reqwest reads it is the name looked up: refused, or unknown to this resolver.
        dotted = await strict.post(f"http://LOCALHOST.:{server.port}/hook", b"{}", {})
        assert dotted.failure in (FailureKind.REFUSED, FailureKind.UNRESOLVABLE), dotted
    finally:
        await strict.close()
    assert server.hits == []


async def test_no_redirect_is_followed(server: Server, sender: PinnedSender) -> None:
    result = await sender.post(f"http://127.0.0.1:{server.port}/redirect", b"{}", {})
    assert result.status_code == 302, result
    assert [path for path, _ in server.hits] == ["/redirect"]


async def test_the_excerpt_is_bounded_and_the_deadline_covers_the_body(server: Server, sender: PinnedSender
                                                                       ) -> None:
    huge = await sender.post(f"http://127.0.0.1:{server.port}/huge", b"{}", {})
    assert huge.status_code == 200 and 0 < len(huge.excerpt) <= EXCERPT_BYTES, len(huge.excerpt)
    silent = await sender.post(f"http://127.0.0.1:{server.port}/silent", b"{}", {}, deadline=0.5)
    assert silent.failure is FailureKind.TIMEOUT and silent.error == "timeout after 0.5s", silent
    assert silent.duration_ms < 3000, silent


async def test_failures_have_their_kinds(sender: PinnedSender) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    refused = await sender.post(f"http://127.0.0.1:{closed}/hook", b"{}", {})
    assert refused.failure is FailureKind.CONNECTION and refused.error.startswith("connection error"), refused
    for url in ("ftp://example.com/x", "not a url", "http://[::1/hook"):
        invalid = await sender.post(url, b"{}", {})
        assert invalid.failure is FailureKind.INVALID_URL, (url, invalid)
    unknown = await sender.post("http://no-such-host.invalid/hook", b"{}", {})
    assert unknown.failure in (FailureKind.UNRESOLVABLE, FailureKind.TIMEOUT), unknown
    assert unknown.error.startswith("dns: "), unknown


async def test_a_proxy_in_the_environment_is_not_used(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy would resolve the name itself, past the policy: the sender must connect directly."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    direct = PinnedSender(LOOPBACK, timeout=5.0)
    try:
        result = await direct.post(f"http://localhost:{server.port}/hook", b"{}", {})
    finally:
        await direct.close()
    assert result.status_code == 200, result
