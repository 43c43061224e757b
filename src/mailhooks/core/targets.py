"""Rules for subscriber URLs: syntax, and the SSRF guard against private and loopback addresses.

The same check runs at subscribe time (the edge answers with its validation error) and at send time
(the dispatcher connects to the very address that was checked, so DNS cannot be swapped in between).
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from yarl import URL

from mailhooks.core.errors import ValidationFailed
from mailhooks.core.resolver import HostResolver, LookupFailed, LookupTimedOut

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048

# IPv6 prefixes that carry an IPv4 address a gateway will forward to: the IPv4 rules apply to it.
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 (deprecated): ::a.b.c.d
SIIT_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765: ::ffff:0:a.b.c.d
# Where the IPv4 address sits depends on the operator's prefix length, so these are refused whole.
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215
SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # RFC 3879 (deprecated, still routed inside some sites)


class Unresolvable(ValidationFailed):
    """The host has no address right now: tolerated when subscribing, retried when sending."""

    def __init__(self, errors: dict[str, list[str]], message: str | None = None, timed_out: bool = False) -> None:
        super().__init__(errors, message)
        self.timed_out = timed_out


class AddressRefused(ValidationFailed):
    """The host is, or resolves to, an address the policy does not allow: final, whenever it is found."""


def refused_message(address: IPAddress) -> str:
    return f"The url resolves to a private or loopback address ({address}), which is not allowed."


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for through mapping or translation, if any.

    Teredo (2001::/32) is not one of these: its IPv4 part is a client's NAT, and the prefix is not
    global, so the IPv6 rules refuse it.
    """
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:  # 2002:AABB:CCDD::/48 routes to AA.BB.CC.DD
        return address.sixtofour
    if address in NAT64_WELL_KNOWN or address in SIIT_TRANSLATED or address in IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class TargetPolicy:
    """Which resolved addresses a delivery may go to, and the lookups that find them."""

    def __init__(self, allow_private: bool = False, allowed_cidrs: Sequence[IPNetwork] = (),
                 resolver: HostResolver | None = None) -> None:
        self.allow_private = allow_private
        self.allowed_cidrs = tuple(allowed_cidrs)
        self.resolver = resolver or HostResolver()

    def address_allowed(self, address: IPAddress) -> bool:
        if self.allow_private:
            return True
        if any(address in net for net in self.allowed_cidrs):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if address in NAT64_LOCAL_USE or address in SITE_LOCAL:
                return False
            embedded = embedded_ipv4(address)
            if embedded is not None:
                return self.address_allowed(embedded)
        return address.is_global and not address.is_multicast

    def check(self, addresses: Sequence[IPAddress]) -> None:
        """Raise ``AddressRefused`` if any address is not allowed.

        Refusing the whole host when one of its addresses is private keeps a rebinding trick from
        picking the private one later.
        """
        for address in addresses:
            if not self.address_allowed(address):
                raise AddressRefused.field("url", refused_message(address))

    async def resolve(self, host: str, port: int = 0) -> list[IPAddress]:
        """``host``'s addresses, all allowed; else ``AddressRefused`` or ``Unresolvable``.

        Lookups are cached (see ``core.resolver``) but the policy is applied on every call.
        """
        del port  # the answer does not depend on it; kept for the callers' symmetry with getaddrinfo
        try:
            addresses: Sequence[IPAddress] = (ipaddress.ip_address(host.strip("[]")),)
        except ValueError:
            try:
                addresses = await self.resolver.addresses(host)
            except LookupFailed as exc:
                raise Unresolvable({"url": [f"The url host {host!r} cannot be resolved ({exc.reason})."]},
                                   timed_out=isinstance(exc, LookupTimedOut)) from exc
        self.check(addresses)
        return list(addresses)


_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")


def _sendable_host(host: str) -> bool:
    """An IP literal, or a DNS name an HTTP client will look up as it is written.

    A name whose last label is numeric is an IPv4 address in another spelling (``127.1``, ``0x7f.1``):
    HTTP clients refuse or reinterpret those, so only the canonical dotted quad is accepted.
    """
    if host.startswith("["):
        if "%" in host:  # a zone id names an interface of this machine, not a receiver
            return False
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return host.endswith("]")
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return False
        return True
    return all(_HOST_LABEL.fullmatch(label) and _valid_a_label(label) for label in labels)


def _valid_a_label(label: str) -> bool:
    """An ``xn--`` label must be punycode that decodes to a valid IDNA name (``xn--`` alone is not)."""
    if not label.startswith("xn--"):
        return True
    try:
        label.encode("ascii").decode("idna")
    except UnicodeError:
        return False
    return True


def _same_host(a: str, b: str) -> bool:
    """Equal names, or equal addresses however spelled (yarl rewrites ``::ffff:1.2.3.4``)."""
    if a.lower() == b.lower():
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def _invalid() -> ValidationFailed:
    return ValidationFailed.field("url", "The url must be a valid URL.")


def check_url_syntax(url: object) -> str:
    """Return the URL stripped if it can be sent: an absolute http(s) URL whose host the sender will
    connect to is the host we check; else raise ``ValidationFailed``.

    The sender (aiohttp) parses with yarl, this module with ``urlsplit``: both must agree on the scheme,
    host and port, or a URL could be checked for one host and sent to another (``http://a\\@b/``).
    """
    if not isinstance(url, str) or not url.strip():
        raise ValidationFailed.field("url", "The url field is required.")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValidationFailed.field("url", f"The url may not be greater than {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 or ch in "\\\x7f" for ch in url):
        raise _invalid()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _invalid() from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationFailed.field("url", "The url must use HTTP or HTTPS.")
    if not parts.hostname:
        raise _invalid()
    try:
        parsed = URL(url)
        sent_host = parsed.raw_host
        sent_port = parsed.port
        expected_host = parts.hostname.encode("idna").decode("ascii") if not parts.hostname.isascii() \
            else parts.hostname
    except (ValueError, TypeError, UnicodeError) as exc:  # yarl refuses it: the sender could never send it
        raise _invalid() from exc
    default_port = 443 if parts.scheme.lower() == "https" else 80
    if (not sent_host or parsed.scheme != parts.scheme.lower() or not _same_host(sent_host, expected_host)
            or sent_port != (default_port if port is None else port) or not sent_port):
        raise _invalid()
    if not _sendable_host(parsed.host_subcomponent or ""):
        raise _invalid()
    return url


def url_host_port(url: str) -> tuple[str, int]:
    """The host and port the sender connects to (parsed as aiohttp does, IDNA-encoded)."""
    parsed = URL(url)
    return parsed.raw_host or "", parsed.port or (443 if parsed.scheme == "https" else 80)


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
