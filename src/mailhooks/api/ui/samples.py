"""The "Send test" buttons: one signed sample event to a webhook's URL, told back as a flash message."""

from __future__ import annotations

from mailhooks.api.ui.formatting import ms
from mailhooks.core.models import Account, Domain
from mailhooks.worker.sender import Sender, SendResult, send_sample


async def send_test(sender: Sender, account: Account, domain: Domain, event_type: str, url: str,
                    payload_format: str) -> tuple[str, str]:
    """Send the sample and answer ``(message, kind)`` for ``rendering.redirect``."""
    return outcome(url, await send_sample(sender, account, domain, event_type, url, payload_format))


def outcome(url: str, result: SendResult) -> tuple[str, str]:
    took = ms(result.duration_ms)
    if result.status_code is not None:
        kind = "ok" if result.ok else "error"
        return f"Test event to {url}: the receiver answered HTTP {result.status_code} in {took}.", kind
    return f"Test event to {url}: no answer after {took} ({result.error}).", "error"
