"""The event-type vocabulary shared by every dialect.

Canonical names are the union of the Mailgun and Kirim.Email names. A webhook of type T receives
events of type T; nothing else is inferred.
"""

from __future__ import annotations

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


def mailgun_type(name: str) -> str | None:
    """The canonical type for a Mailgun webhook name or legacy alias, or ``None`` if it is not one."""
    name = name.strip()
    if name in MAILGUN_TYPES:
        return name
    return MAILGUN_ALIASES.get(name)


def is_kirim_type(name: object) -> bool:
    return isinstance(name, str) and name in KIRIM_TYPES


def is_canonical(name: object) -> bool:
    return isinstance(name, str) and name in CANONICAL
