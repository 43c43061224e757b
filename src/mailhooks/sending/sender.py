"""One signed POST to a subscriber, over a pooled aiohttp session.

The connector's resolver applies the target policy, so the socket goes to exactly the address that
was checked (no DNS rebinding between check and connect). Redirects are never followed. An attempt
without an HTTP answer says why in ``SendResult.failure`` (a ``FailureKind``), which the retry policy
reads: only a refused target or an unsendable URL is final.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from mailhooks.core.errors import ValidationFailed
from mailhooks.core.models import Account, Domain
from mailhooks.core.payloads import PreparedEvent, sample_event
from mailhooks.core.retry import FailureKind
from mailhooks.core.targets import TargetPolicy, Unresolvable, refused_message

EXCERPT_BYTES = 1024


class TargetRefused(Exception):
    """The target is, or resolved to, an address the policy does not allow."""


class TargetUnresolvable(Exception):
    """The lookup failed or timed out: transient, the delivery is retried on its schedule.

    Not an ``OSError``, so aiohttp passes it through as it is instead of wrapping it.
    """

    def __init__(self, message: str, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class PolicyResolver(AbstractResolver):
    """aiohttp asks this for every new connection to a named host: the policy's cached lookup, with the
    policy applied to the answer every time. aiohttp connects to exactly the addresses returned."""

    def __init__(self, policy: TargetPolicy) -> None:
        self.policy = policy

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        try:
            addresses = await self.policy.resolve(host, port)
        except Unresolvable as exc:
            raise TargetUnresolvable(exc.message, exc.timed_out) from exc
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
    failure: FailureKind | None = None  # set when there is no status code: why

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address an IP-literal host names (brackets allowed), or ``None`` for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _url_target(url: str) -> tuple[URL, ipaddress.IPv4Address | ipaddress.IPv6Address | None]:
    """The parsed URL (aiohttp would parse the string on every request) and its IP-literal host, if any.

    The literal is taken from the parsed URL itself, so the address checked is the one connected to.
    """
    parsed = URL(url)
    return parsed, literal_address(parsed.raw_host or "")


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
            raise TargetRefused(refused_message(address))
        return parsed

    async def post(self, url: str, body: bytes, headers: dict[str, Any], deadline: float | None = None
                   ) -> SendResult:
        """``deadline``: this request's timeout in seconds, instead of the session's (a subscription's own)."""
        started = time.time()
        limit = self.timeout if deadline is None else aiohttp.ClientTimeout(total=deadline)
        t0 = time.perf_counter()
        failure: FailureKind
        try:
            target = self._check_literal(url)
            async with self.session.post(target, data=body, headers=headers, allow_redirects=False,
                                         timeout=limit) as response:
                raw = await response.content.read(EXCERPT_BYTES)
                excerpt = raw.decode("utf-8", "replace")
                return SendResult(response.status, (time.perf_counter() - t0) * 1000, excerpt, None,
                                  response.headers.get("Retry-After"), started)
        except TargetRefused as exc:
            failure, error = FailureKind.REFUSED, f"refused: {exc}"
        except TargetUnresolvable as exc:
            failure = FailureKind.TIMEOUT if exc.timed_out else FailureKind.UNRESOLVABLE
            error = f"dns: {exc}"
        except aiohttp.ClientConnectorDNSError as exc:  # only if aiohttp itself resolves (it does not here)
            failure, error = FailureKind.UNRESOLVABLE, f"dns: {exc}"
        except aiohttp.ClientConnectorError as exc:
            failure, error = FailureKind.CONNECTION, f"connection error: {exc}"
        except TimeoutError:
            failure, error = FailureKind.TIMEOUT, f"timeout after {limit.total:g}s"
        except aiohttp.InvalidURL as exc:
            failure, error = FailureKind.INVALID_URL, f"invalid url: {exc}"
        except aiohttp.ClientConnectionError as exc:
            failure, error = FailureKind.CONNECTION, f"{type(exc).__name__}: {exc}"
        except aiohttp.ClientError as exc:
            failure, error = FailureKind.PROTOCOL, f"{type(exc).__name__}: {exc}"
        except (ValueError, UnicodeError) as exc:  # malformed URL that slipped past the subscribe-time check
            failure, error = FailureKind.INVALID_URL, f"invalid url: {exc}"
        return SendResult(None, (time.perf_counter() - t0) * 1000, "", error, None, started, failure)


class Posts(Protocol):
    """What ``send_sample`` needs of a sender: ``Sender`` or ``PinnedSender``."""

    async def post(self, url: str, body: bytes, headers: dict[str, Any], deadline: float | None = None
                   ) -> SendResult: ...


async def send_sample(sender: Posts, account: Account, domain: Domain, event_type: str, url: str,
                      payload_format: str) -> SendResult:
    """The dialects' ``test`` endpoints: one sample event through the same payload and signing code."""
    event = sample_event(event_type, domain.name, account.guid)
    prepared = PreparedEvent.prepare(payload_format, event, domain.secret)
    body, headers = prepared.render(account.signing_key, f"test_{event['id']}",
                                    previous_key=account.previous_signing_key,
                                    previous_until=account.previous_key_until or 0.0)
    return await sender.post(url, body, headers)
