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
from typing import Any, NamedTuple

from pyreqwest import exceptions as rq
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.http import Url

from mailhooks.core.errors import ValidationFailed
from mailhooks.core.retry import FailureKind
from mailhooks.core.targets import TargetPolicy, Unresolvable, refused_message
from mailhooks.sending.sender import EXCERPT_BYTES, SendResult, literal_address

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
PINNED_CLIENTS = 1024  # (host, address) pools kept; the least recently used beyond are dropped


def _failure(exc: rq.RequestError) -> tuple[FailureKind, str]:
    """reqwest's error chain as the sender's failure kinds (timeouts are caught before: ``post``); the
    innermost cause says most."""
    causes = (exc.details or {}).get("causes") or []
    cause = causes[-1]["message"] if causes else exc.message
    if isinstance(exc, rq.ConnectError):
        return FailureKind.CONNECTION, f"connection error: {cause}"
    if isinstance(exc, rq.NetworkError):
        return FailureKind.CONNECTION, f"{type(exc).__name__}: {cause}"
    if isinstance(exc, rq.BuilderError):
        return FailureKind.INVALID_URL, f"invalid url: {cause}"
    return FailureKind.PROTOCOL, f"{type(exc).__name__}: {cause}"


class _Target(NamedTuple):
    url: Url
    host: str
    port: int
    literal: IPAddress | None


class PinnedSender:
    """Owns the pinned clients. Create inside a running event loop; ``close()`` when done."""

    def __init__(self, policy: TargetPolicy, timeout: float = 10.0, limit: int = 512) -> None:
        self.policy = policy
        self.timeout = timeout
        self.limit = limit
        self.literal_client = self._client(None)
        self.pinned: OrderedDict[tuple[str, IPAddress], Client] = OrderedDict()
        self.urls: dict[str, _Target] = {}  # worked out once per subscriber URL (bounded like the pins)

    def _client(self, pin: tuple[str, str, int] | None) -> Client:
        builder = (ClientBuilder().follow_redirects(False).max_connections(self.limit)
                   .timeout(datetime.timedelta(seconds=self.timeout)).error_for_status(False)
                   .gzip(False).brotli(False).deflate(False).zstd(False).referer(False)
                   .no_proxy().default_cookie_store(False).http1_lower_case_headers())
        if pin is not None:
            builder = builder.resolve(*pin)
        return builder.build()

    def _pinned_client(self, host: str, address: IPAddress, port: int) -> Client:
        key = (host, address)
        client = self.pinned.get(key)
        if client is None:
            client = self.pinned[key] = self._client((host, str(address), port))
            while len(self.pinned) > PINNED_CLIENTS:
                self.pinned.popitem(last=False)  # in-flight requests keep their own reference
        else:
            self.pinned.move_to_end(key)
        return client

    def _target(self, url: str) -> _Target:
        """The URL as reqwest reads it, its host, port and IP literal: worked out once per URL."""
        target = self.urls.get(url)
        if target is None:
            parsed = Url(url)
            host = parsed.host_str
            if parsed.scheme not in ("http", "https") or not host:
                raise ValueError(f"{url!r} is not an http(s) URL with a host")
            target = _Target(parsed, host, int(parsed.port_or_known_default or 0), literal_address(host))
            if len(self.urls) >= PINNED_CLIENTS * 4:
                self.urls.clear()
            self.urls[url] = target
        return target

    async def _clients(self, target: _Target) -> list[Client]:
        """The clients to try in order, each able to reach only an address the policy allowed just now."""
        if target.literal is not None:
            if not self.policy.address_allowed(target.literal):
                raise ValidationFailed.field("url", refused_message(target.literal))
            return [self.literal_client]
        addresses = await self.policy.resolve(target.host, target.port)
        return [self._pinned_client(target.host, addr, target.port) for addr in addresses]

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
            target = self._target(url)
            clients = await self._clients(target)
            for position, client in enumerate(clients):
                builder = client.post(target.url).body_bytes(body).headers(headers)
                if deadline is not None or position:  # else the client's own deadline applies
                    remaining = limit - (time.perf_counter() - t0)
                    if remaining <= 0:
                        raise TimeoutError
                    builder = builder.timeout(datetime.timedelta(seconds=remaining))
                request = builder.build_streamed()
                try:
                    async with request as response:
                        raw = await response.body_reader.read(EXCERPT_BYTES)
                        excerpt = bytes(raw).decode("utf-8", "replace") if raw is not None else ""
                        return SendResult(response.status, (time.perf_counter() - t0) * 1000, excerpt, None,
                                          response.get_header("Retry-After"), started)
                except rq.ConnectError:
                    if position == len(clients) - 1:  # nothing was sent: the next checked address may answer
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
            failure, error = _failure(exc)
        except (ValueError, UnicodeError) as exc:  # malformed URL that slipped past the subscribe-time check
            failure, error = FailureKind.INVALID_URL, f"invalid url: {exc}"
        return SendResult(None, (time.perf_counter() - t0) * 1000, "", error, None, started, failure)
