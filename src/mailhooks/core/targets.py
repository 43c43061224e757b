"""Rules for subscriber URLs: syntax, and the SSRF guard against private and loopback addresses.

The same check runs at subscribe time (the edge answers with its validation error) and at send time
(the dispatcher connects to the very address that was checked, so DNS cannot be swapped in between).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from mailhooks.core.errors import ValidationFailed

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048


class Unresolvable(ValidationFailed):
    """The host has no address right now: fatal when sending, tolerated when subscribing."""


RESOLVE_TIMEOUT = 5.0


class TargetPolicy:
    """Which resolved addresses a delivery may go to."""

    def __init__(self, allow_private: bool = False, allowed_cidrs: Sequence[IPNetwork] = ()) -> None:
        self.allow_private = allow_private
        self.allowed_cidrs = tuple(allowed_cidrs)

    def address_allowed(self, address: IPAddress) -> bool:
        if self.allow_private:
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in self.allowed_cidrs):
            return True
        return address.is_global and not address.is_multicast

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host`` and return its addresses; raise ``ValidationFailed`` if any is not allowed.

        Refusing the whole host when one of its addresses is private keeps a rebinding trick from
        picking the private one later.
        """
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
            addresses: list[IPAddress] = [literal]
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM),
                                               RESOLVE_TIMEOUT)
            except (OSError, UnicodeError, TimeoutError) as exc:
                raise Unresolvable.field("url", f"The url host {host!r} cannot be resolved.") from exc
            addresses = []
            for info in infos:
                addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
                if addr not in addresses:
                    addresses.append(addr)
        if not addresses:
            raise Unresolvable.field("url", f"The url host {host!r} cannot be resolved.")
        for addr in addresses:
            if not self.address_allowed(addr):
                raise ValidationFailed.field(
                    "url", f"The url resolves to a private or loopback address ({addr}), which is not allowed."
                )
        return addresses


def check_url_syntax(url: object) -> str:
    """Return the URL stripped if it is an absolute http(s) URL with a host, else raise ``ValidationFailed``."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationFailed.field("url", "The url field is required.")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValidationFailed.field("url", f"The url may not be greater than {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ValidationFailed.field("url", "The url must be a valid URL.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationFailed.field("url", "The url must be a valid URL.") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationFailed.field("url", "The url must use HTTP or HTTPS.")
    if not parts.hostname:
        raise ValidationFailed.field("url", "The url must be a valid URL.")
    del port
    return url


def url_host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    return host, port


async def check_target(url: object, policy: TargetPolicy) -> str:
    """Full subscribe-time check: syntax, then the address policy.

    A host that does not resolve *now* is accepted (DNS may come later, and the send-time check
    repeats the policy); a host that resolves to a refused address is not.
    """
    clean = check_url_syntax(url)
    host, port = url_host_port(clean)
    with contextlib.suppress(Unresolvable):
        await policy.resolve(host, port)
    return clean
