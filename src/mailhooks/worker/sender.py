"""One signed POST to a subscriber, over a pooled aiohttp session.

The connector's resolver applies the target policy, so the socket goes to exactly the address that
was checked (no DNS rebinding between check and connect). Redirects are never followed.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from mailhooks.core.errors import ValidationFailed
from mailhooks.core.models import Account, Domain
from mailhooks.core.payloads import PreparedEvent, sample_event
from mailhooks.core.targets import TargetPolicy

EXCERPT_BYTES = 1024


class TargetRefused(Exception):
    """The target resolved to an address the policy does not allow."""


class PolicyResolver(AbstractResolver):
    def __init__(self, policy: TargetPolicy) -> None:
        self.policy = policy

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        try:
            addresses = await self.policy.resolve(host, port)
        except ValidationFailed as exc:
            raise TargetRefused(exc.message) from exc
        return [
            ResolveResult(hostname=host, host=str(addr), port=port,
                          family=socket.AF_INET6 if addr.version == 6 else socket.AF_INET, proto=0,
                          flags=socket.AI_NUMERICHOST)
            for addr in addresses
        ]

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class SendResult:
    status_code: int | None
    duration_ms: float
    excerpt: str
    error: str | None
    retry_after: str | None = None
    started_at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _url_target(url: str) -> tuple[URL, ipaddress.IPv4Address | ipaddress.IPv6Address | None]:
    """The parsed URL (aiohttp would parse the string on every request) and its IP-literal host, if any."""
    return URL(url), _literal_address(urlsplit(url).hostname or "")


class Sender:
    """Owns the connection pool. Create inside a running event loop; ``close()`` when done."""

    def __init__(self, policy: TargetPolicy, timeout: float = 10.0, limit: int = 512) -> None:
        self.policy = policy
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        connector = aiohttp.TCPConnector(resolver=PolicyResolver(policy), limit=limit, limit_per_host=0,
                                         ttl_dns_cache=None, use_dns_cache=False, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(connector=connector, timeout=self.timeout, auto_decompress=False,
                                             skip_auto_headers=("Accept-Encoding",))

    async def close(self) -> None:
        await self.session.close()

    def _check_literal(self, url: str) -> URL:
        """aiohttp never asks the resolver about an IP-literal host, so the policy is applied here."""
        parsed, address = _url_target(url)
        if address is not None and not self.policy.address_allowed(address):
            raise TargetRefused(
                f"The url resolves to a private or loopback address ({address}), which is not allowed.")
        return parsed

    async def post(self, url: str, body: bytes, headers: dict[str, Any]) -> SendResult:
        started = time.time()
        t0 = time.perf_counter()
        try:
            target = self._check_literal(url)
            async with self.session.post(target, data=body, headers=headers, allow_redirects=False) as response:
                raw = await response.content.read(EXCERPT_BYTES)
                excerpt = raw.decode("utf-8", "replace")
                return SendResult(response.status, (time.perf_counter() - t0) * 1000, excerpt, None,
                                  response.headers.get("Retry-After"), started)
        except TargetRefused as exc:
            error = f"refused: {exc}"
        except aiohttp.ClientConnectorError as exc:
            cause = exc.os_error
            error = f"refused: {cause}" if isinstance(cause, TargetRefused) else f"connection error: {exc}"
        except TimeoutError:
            error = f"timeout after {self.timeout.total:g}s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except ValueError as exc:  # malformed URL that slipped past the subscribe-time check
            error = f"invalid url: {exc}"
        return SendResult(None, (time.perf_counter() - t0) * 1000, "", error, None, started)


async def send_sample(sender: Sender, account: Account, domain: Domain, event_type: str, url: str,
                      payload_format: str) -> SendResult:
    """The dialects' ``test`` endpoints: one sample event through the same payload and signing code."""
    event = sample_event(event_type, domain.name, account.guid)
    prepared = PreparedEvent.prepare(payload_format, event, domain.secret)
    body, headers = prepared.render(account.signing_key, f"test_{event['id']}")
    return await sender.post(url, body, headers)
