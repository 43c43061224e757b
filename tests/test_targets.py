"""The target rules without a server: which addresses are allowed (IPv6 that carries IPv4 included), which
URLs can be sent at all, and the policy applied to every use of a cached lookup."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from mailhooks.core.errors import ValidationFailed
from mailhooks.core.resolver import HostResolver
from mailhooks.core.targets import AddressRefused, TargetPolicy, check_url_syntax

# address, allowed by the default policy
ADDRESSES = [
    ("8.8.8.8", True),
    ("2001:4860:4860::8888", True),
    ("127.0.0.1", False),
    ("169.254.169.254", False),
    ("::1", False),
    ("::ffff:127.0.0.1", False),  # IPv4-mapped
    ("::ffff:8.8.8.8", True),
    ("64:ff9b::a9fe:a9fe", False),  # NAT64 well-known prefix: 169.254.169.254, the metadata address
    ("64:ff9b::7f00:1", False),
    ("64:ff9b::a00:1", False),  # 10.0.0.1
    ("64:ff9b::808:808", True),  # 8.8.8.8 through NAT64 is still 8.8.8.8
    ("64:ff9b:1::808:808", False),  # local-use NAT64: where the IPv4 sits depends on the site
    ("64:ff9b:1:ffff::1", False),
    ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::1", False),  # 6to4 of 169.254.169.254
    ("2002:808:808::1", True),
    ("::7f00:1", False),  # IPv4-compatible ::127.0.0.1
    ("::a9fe:a9fe", False),
    ("::808:808", True),
    ("::", False),
    ("::ffff:0:7f00:1", False),  # SIIT ::ffff:0:127.0.0.1
    ("::ffff:0:a9fe:a9fe", False),
    ("::ffff:0:808:808", True),
    ("fec0::1", False),  # site-local
    ("feff::1", False),
    ("fe80::1", False),
    ("fc00::1", False),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
]


@pytest.mark.parametrize(("address", "allowed"), ADDRESSES)
def test_the_ipv4_rules_apply_to_ipv4_carried_in_ipv6(address: str, allowed: bool) -> None:
    assert TargetPolicy().address_allowed(ipaddress.ip_address(address)) is allowed


def test_allowed_cidrs_open_an_embedded_address_or_a_whole_prefix() -> None:
    by_ipv4 = TargetPolicy(allowed_cidrs=[ipaddress.ip_network("10.0.0.0/8")])
    assert by_ipv4.address_allowed(ipaddress.ip_address("64:ff9b::a00:1"))
    assert by_ipv4.address_allowed(ipaddress.ip_address("2002:a00:1::1"))
    assert not by_ipv4.address_allowed(ipaddress.ip_address("64:ff9b::a9fe:a9fe"))
    by_prefix = TargetPolicy(allowed_cidrs=[ipaddress.ip_network("64:ff9b:1::/48"),
                                            ipaddress.ip_network("fec0::/10")])
    assert by_prefix.address_allowed(ipaddress.ip_address("64:ff9b:1::808:808"))
    assert by_prefix.address_allowed(ipaddress.ip_address("fec0::1"))
    assert TargetPolicy(allow_private=True).address_allowed(ipaddress.ip_address("64:ff9b::a9fe:a9fe"))


UNSENDABLE = [
    "http://127.0.0.1\\@example.com/",  # urlsplit: example.com; yarl/aiohttp: refused outright
    "http://example.com\\@127.0.0.1/",
    "http://xn--/",  # invalid IDNA
    "http://xn--a.example/",
    "http://-bad.example/",
    "http://a..example/",
    "http://exa%6dple.com/",
    "http://127.1/",  # an IPv4 address in another spelling: aiohttp refuses it
    "http://0x7f.0.0.1/",
    "http://2130706433/",
    "http://1.2.3.4.5/",
    "http://[fe80::1%25eth0]/",  # a zone id
    "http://[::1/",
    "http://example.com:0/",
    "http://example.com:99999/",
    "http://exam\x7fple.com/",
    "http://" + "a" * 64 + ".example/",
    "http:///path",
    "ftp://example.com/",
]

SENDABLE = [
    "https://hooks.example.com/mg",
    "http://user:secret@hooks.example.com:8443/p?q=1#frag",
    "http://bücher.example/",
    "http://xn--bcher-kva.example/",
    "http://hooks.example.com./",
    "http://under_score.example.com/",
    "http://8.8.8.8/",
    "http://[2001:4860:4860::8888]:8080/",
    "http://[::ffff:8.8.8.8]/",
]


@pytest.mark.parametrize("url", UNSENDABLE)
def test_urls_that_can_never_be_sent_are_invalid(url: str) -> None:
    with pytest.raises(ValidationFailed):
        check_url_syntax(url)


@pytest.mark.parametrize("url", SENDABLE)
def test_sendable_urls_pass_unchanged(url: str) -> None:
    assert check_url_syntax(url) == url


def test_the_policy_is_applied_to_every_use_of_a_cached_lookup() -> None:
    """``localhost`` comes from /etc/hosts: a real lookup, no DNS query."""
    async def work() -> None:
        policy = TargetPolicy(allowed_cidrs=[ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")])
        first = await policy.resolve("localhost", 80)
        assert ipaddress.ip_address("127.0.0.1") in first
        assert policy.resolver.lookups == 1
        assert await policy.resolve("LOCALHOST", 80) == first
        assert policy.resolver.lookups == 1  # cached
        policy.allowed_cidrs = ()  # the cached answer is unchanged; the verdict is not
        with pytest.raises(AddressRefused, match="127.0.0.1|::1"):
            await policy.resolve("localhost", 80)
        assert policy.resolver.lookups == 1
        policy.resolver.close()

    asyncio.run(work())


def test_cached_answers_expire() -> None:
    async def work() -> None:
        now = [0.0]
        resolver = HostResolver(ttl=30.0, clock=lambda: now[0])
        await resolver.addresses("localhost")
        now[0] = 29.0
        await resolver.addresses("localhost")
        assert resolver.lookups == 1
        now[0] = 31.0
        await resolver.addresses("localhost")
        assert resolver.lookups == 2
        resolver.close()

    asyncio.run(work())
