"""The canonical meaning of a provider's failure, complaint and unsubscribe events, in one place.

Every source maps a provider's bounce onto ``severity`` (``permanent`` or ``temporary``: Mailgun's own
field, kept in the stored event-data) and the event type ``permanent_fail`` / ``temporary_fail``;
complaints are ``complained`` and unsubscribes ``unsubscribed``. ``suppression_kind`` says which stored
events should stop further mail to the recipient, for a suppression list built on top of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    PERMANENT = "permanent"  # the address will not accept mail: suppress it
    TEMPORARY = "temporary"  # try again later


class SuppressionKind(StrEnum):
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"


# Permanent failures that say nothing about the address: the platform gave up retrying (``old``, Mailgun's
# word), or refused because the address is already suppressed.
NOT_THE_ADDRESS = frozenset({"old", "suppress-bounce", "suppress-complaint", "suppress-unsubscribe"})

FAIL_TYPE = {Severity.PERMANENT: "permanent_fail", Severity.TEMPORARY: "temporary_fail"}


def failure(severity: Severity) -> dict[str, str]:
    """The event type and ``severity`` field of a failed delivery of this severity."""
    return {"event": FAIL_TYPE[severity], "severity": severity.value}


def suppression_kind(event: Mapping[str, Any]) -> SuppressionKind | None:
    """Whether a canonical event (stored event-data) should suppress its recipient, and why."""
    event_type = event.get("event")
    if event.get("reason") in NOT_THE_ADDRESS:
        return None
    if event_type == "permanent_fail" or (event_type in ("failed", "bounced")
                                          and event.get("severity") == Severity.PERMANENT):
        return SuppressionKind.BOUNCE
    if event_type == "complained":
        return SuppressionKind.COMPLAINT
    if event_type == "unsubscribed":
        return SuppressionKind.UNSUBSCRIBE
    return None
