"""The "Send test" buttons: one signed sample event to a webhook's URL, told back as a flash message."""

from __future__ import annotations

from mailhooks.api import samples
from mailhooks.api.state import Services
from mailhooks.api.ui.formatting import ms
from mailhooks.core.models import Account, Domain
from mailhooks.sending import SendResult


async def send_test(svc: Services, account: Account, domain: Domain, event_type: str, url: str,
                    payload_format: str) -> tuple[str, str]:
    """Send the sample through the dialects' own test-send flow and answer ``(message, kind)`` for
    ``rendering.redirect``. The URL is a stored one, checked when it was subscribed (the sender applies the
    target policy again when it connects)."""
    _, result = await samples.send_test(svc, account, domain, event_type, url, payload_format, check_url=False)
    return outcome(url, result)


def outcome(url: str, result: SendResult) -> tuple[str, str]:
    took = ms(result.duration_ms)
    if result.status_code is not None:
        kind = "ok" if result.ok else "error"
        return f"Test event to {url}: the receiver answered HTTP {result.status_code} in {took}.", kind
    return f"Test event to {url}: no answer after {took} ({result.error}).", "error"
