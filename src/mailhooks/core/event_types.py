"""The event-type vocabulary shared by every dialect.

Canonical names are the union of the Mailgun and Kirim.Email names. A webhook of type T receives
events of type T; nothing else is inferred.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Final

CANONICAL: Final = (
    "accepted", "queued", "send", "delivered", "deferred", "temporary_fail", "permanent_fail",
    "bounced", "failed", "opened", "clicked", "unsubscribed", "complained",
)

MAILGUN_TYPES: Final = (
    "accepted", "clicked", "opened", "unsubscribed", "delivered", "permanent_fail", "temporary_fail", "complained",
)

# Mailgun's retired legacy webhook names, accepted on input and always answered with the new names.
MAILGUN_ALIASES: Final = {
    "click": "clicked",
    "open": "opened",
    "unsubscribe": "unsubscribed",
    "deliver": "delivered",
    "spam": "complained",
    "bounce": "permanent_fail",
    "drop": "permanent_fail",
}

KIRIM_TYPES: Final = (
    "queued", "send", "delivered", "bounced", "failed", "permanent_fail", "opened", "clicked", "unsubscribed",
    "temporary_fail", "deferred",
)


def parse_type(name: object, types: Collection[str] = CANONICAL,
               aliases: Mapping[str, str] | None = None) -> str | None:
    """The event type ``name`` stands for among ``types`` (or through ``aliases``, e.g. ``MAILGUN_ALIASES``),
    or ``None`` if it names none of them. Every dialect reads type names here; none is tidied: a caller
    that accepts surrounding blanks strips them first (Mailgun and ingest do, Kirim.Email does not)."""
    if not isinstance(name, str):
        return None
    if name in types:
        return name
    return aliases.get(name) if aliases is not None else None
