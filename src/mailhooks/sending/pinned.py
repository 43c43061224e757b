"""The sender on pyreqwest (Rust's reqwest/hyper): the same face as ``Sender``, about a third of its CPU.

reqwest takes no resolver from Python, only build-time pins (``ClientBuilder.resolve(host, ip, port)``),
so the policy is applied here, before every request, and the request goes through a client pinned to
the address just checked: one client per (host, address), kept while the policy's cached lookup keeps
answering that address. A name is read by reqwest's own URL parser (``pyreqwest.http.Url``) before it
is looked up, so the name checked and pinned is byte for byte the name reqwest connects to; a name
missing from a client's pins would fall through to the system resolver, so a client is only ever
used for the one name it pins. IP literals are checked against the policy and need no pin. Redirects
are never followed; each request has a total deadline (connect to the last byte read); at most
``EXCERPT_BYTES`` of the answer are read. A refused connection to the first checked address moves on
to the next, within the same deadline, as aiohttp's connector does.
"""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections import OrderedDict
from typing import Any

from pyreqwest import exceptions as rq
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.http import Url

from mailhooks.core.errors import ValidationFailed
from mailhooks.core.retry import FailureKind
from mailhooks.core.targets import TargetPolicy, Unresolvable, refused_message
from mailhooks.sending.sender import EXCERPT_BYTES, SendResult

PINNED_CLIENTS = 1024  # (host, address) pools kept; the least recently used beyond are dropped


def _failure(exc: rq.RequestError, limit: float) -> tuple[FailureKind, str]:
    """reqwest's error chain as the sender's failure kinds; the innermost cause says most."""
    causes = (exc.details or {}).get("causes") or []
    cause = causes[-1]["message"] if causes else exc.message
    if isinstance(exc, rq.RequestTimeoutError):
        return FailureKind.TIMEOUT, f"timeout after {limit:g}s"
    if isinstance(exc, rq.ConnectError):
        return FailureKind.CONNECTION, f"connection error: {cause}"
    if isinstance(exc, rq.NetworkError):
        return FailureKind.CONNECTION, f"{type(exc).__name__}: {cause}"
    if isinstance(exc, rq.BuilderError):
        return FailureKind.INVALID_URL, f"invalid url: {cause}"
    return FailureKind.PROTOCOL, f"{type(exc).__name__}: {cause}"


class PinnedSender:
    """Owns the pinned clients. Create inside a running event loop; ``close()`` when done."""

    def __init__(self, policy: TargetPolicy, timeout: float = 10.0, limit: int = 512) -> None:
        self.policy = policy
        self.timeout = timeout
        self.limit = limit
        self.literal_client = self._client(None)
        self.pinned: OrderedDict[tuple[str, str], Client] = OrderedDict()
        self.urls: dict[str, Url] = {}  # parsed once per subscriber URL (bounded like the pins)

    def _client(self, pin: tuple[str, str, int] | None) -> Client:
        builder = (ClientBuilder().follow_redirects(False).max_connections(self.limit)
                   .timeout(datetime.timedelta(seconds=self.timeout)).error_for_status(False)
                   .gzip(False).brotli(False).deflate(False).zstd(False).referer(False)
                   .no_proxy().default_cookie_store(False).http1_lower_case_headers())
        if pin is not None:
            builder = builder.resolve(*pin)
        return builder.build()

    def _pinned_client(self, host: str, address: str, port: int) -> Client:
        key = (host, address)
        client = self.pinned.get(key)
        if client is None:
            client = self.pinned[key] = self._client((host, address, port))
            while len(self.pinned) > PINNED_CLIENTS:
                self.pinned.popitem(last=False)  # in-flight requests keep their own reference
        else:
            self.pinned.move_to_end(key)
        return client

    def _parse(self, url: str) -> Url:
        parsed = self.urls.get(url)
        if parsed is None:
            parsed = Url(url)
            if parsed.scheme not in ("http", "https") or not parsed.host_str:
                raise ValueError(f"{url!r} is not an http(s) URL with a host")
            if len(self.urls) >= PINNED_CLIENTS * 4:
                self.urls.clear()
            self.urls[url] = parsed
        return parsed

    async def _targets(self, parsed: Url) -> list[tuple[Client, str]]:
        """The clients to try in order, each able to reach only an address the policy allowed just now."""
        host = str(parsed.host_str)
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            if not self.policy.address_allowed(literal):
                raise ValidationFailed.field("url", refused_message(literal))
            return [(self.literal_client, host)]
        port = int(parsed.port_or_known_default or 0)
        addresses = await self.policy.resolve(host, port)
        return [(self._pinned_client(host, str(addr), port), str(addr)) for addr in addresses]

    async def close(self) -> None:
        for client in (self.literal_client, *self.pinned.values()):
            await client.close()
        self.pinned.clear()

    async def post(self, url: str, body: bytes, headers: dict[str, Any], deadline: float | None = None
                   ) -> SendResult:
        """``deadline``: this request's timeout in seconds, instead of the sender's (a subscription's own)."""
        started = time.time()
        limit = self.timeout if deadline is None else deadline
        t0 = time.perf_counter()
        failure: FailureKind
        try:
            parsed = self._parse(url)
            targets = await self._targets(parsed)
            for position, (client, _address) in enumerate(targets):
                remaining = limit - (time.perf_counter() - t0)
                if remaining <= 0:
                    raise TimeoutError
                request = (client.post(parsed).body_bytes(body).headers(headers)
                           .timeout(datetime.timedelta(seconds=remaining)).build_streamed())
                try:
                    async with request as response:
                        raw = await response.body_reader.read(EXCERPT_BYTES)
                        excerpt = bytes(raw).decode("utf-8", "replace") if raw is not None else ""
                        return SendResult(response.status, (time.perf_counter() - t0) * 1000, excerpt, None,
                                          response.get_header("Retry-After"), started)
                except rq.ConnectError:
                    if position == len(targets) - 1:  # nothing was sent: the next checked address may answer
                        raise
            raise AssertionError("unreachable: the policy returns at least one address")
        except Unresolvable as exc:
            failure = FailureKind.TIMEOUT if exc.timed_out else FailureKind.UNRESOLVABLE
            error = f"dns: {exc.message}"
        except ValidationFailed as exc:
            failure, error = FailureKind.REFUSED, f"refused: {exc.message}"
        except (TimeoutError, rq.RequestTimeoutError):
            failure, error = FailureKind.TIMEOUT, f"timeout after {limit:g}s"
        except rq.RequestError as exc:
            failure, error = _failure(exc, limit)
        except (ValueError, UnicodeError) as exc:  # malformed URL that slipped past the subscribe-time check
            failure, error = FailureKind.INVALID_URL, f"invalid url: {exc}"
        return SendResult(None, (time.perf_counter() - t0) * 1000, "", error, None, started, failure)
