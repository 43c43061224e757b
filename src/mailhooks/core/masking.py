"""What a subscription's secrets look like when read back: masked, everywhere but on the wire.

A static header is sensitive when its name is ``authorization``, ``proxy-authorization`` or ``cookie``,
or contains ``token``, ``key``, ``secret``, ``password``, ``auth`` or ``signature`` (case ignored). Its
value reads back as ``MASK``; an ``Authorization``-style value keeps its scheme word (``Bearer ********``)
so a reader can tell which kind of credential is set. The password of a URL's userinfo reads back as
``MASK`` too. The native API, the dashboard and the attempts' recorded request headers all show these
forms; only the receiver gets the real values.

Sending a masked value back (a read-modify-write) keeps the stored secret: a header whose new value
equals the mask of its stored value is left as stored (``unmask_headers``), and so is a URL sent back
in its masked form (``unmasked_url``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

MASK = "********"
SENSITIVE_NAMES = frozenset(("authorization", "proxy-authorization", "cookie", "set-cookie"))
SENSITIVE_PARTS = ("token", "key", "secret", "password", "auth", "signature")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9._~+-]{0,31}) +\S")  # "Bearer abc", "Basic abc"


def is_sensitive(name: str) -> bool:
    lower = name.lower()
    return lower in SENSITIVE_NAMES or any(part in lower for part in SENSITIVE_PARTS)


def mask_value(value: str) -> str:
    """``Bearer abc`` → ``Bearer ********``; anything else → ``********``."""
    scheme = _SCHEME.match(value)
    return f"{scheme.group(1)} {MASK}" if scheme else MASK


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: mask_value(value) if is_sensitive(name) else value for name, value in headers.items()}


def unmask_headers(sent: Mapping[str, str], stored: Mapping[str, str]) -> dict[str, str]:
    """``sent`` with every value that is the mask of the stored value of the same header (name case
    ignored) replaced by the stored value."""
    by_name = {name.lower(): value for name, value in stored.items()}
    out: dict[str, str] = {}
    for name, value in sent.items():
        old = by_name.get(name.lower())
        keep = old is not None and is_sensitive(name) and value == mask_value(old)
        out[name] = old if keep and old is not None else value
    return out


def masked_url(url: str) -> str:
    """The URL with the password of its userinfo replaced by ``MASK`` (unchanged when it has none)."""
    if "@" not in url:
        return url
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def unmasked_url(sent: str, stored: str) -> str:
    """The stored URL when ``sent`` is its masked form (an edit form saved without touching the URL)."""
    return stored if sent != stored and sent == masked_url(stored) else sent
