"""The canonical meaning of a provider's failure, complaint and unsubscribe events, in one place.

Every source maps a provider's bounce onto ``severity`` (``permanent`` or ``temporary``: Mailgun's own
field, kept in the stored event-data) and the event type ``permanent_fail`` / ``temporary_fail``;
complaints are ``complained`` and unsubscribes ``unsubscribed``. Which of them suppress the recipient is
decided for every event alike by ``core.suppressions.suppression_kind``.
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    PERMANENT = "permanent"  # the address will not accept mail: suppress it
    TEMPORARY = "temporary"  # try again later


FAIL_TYPE = {Severity.PERMANENT: "permanent_fail", Severity.TEMPORARY: "temporary_fail"}


def failure(severity: Severity) -> dict[str, str]:
    """The event type and ``severity`` field of a failed delivery of this severity."""
    return {"event": FAIL_TYPE[severity], "severity": severity.value}
