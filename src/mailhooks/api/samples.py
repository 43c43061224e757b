"""Test sends: one sample event to one URL, the flow behind every dialect's test endpoint and the dashboard's."""

from __future__ import annotations

from mailhooks.api.state import Services
from mailhooks.core.models import Account, Domain
from mailhooks.core.payloads import PayloadFormat
from mailhooks.sending import SendResult, send_sample


async def send_test(svc: Services, account: Account, domain: Domain, event_type: str, url: str,
                    payload_format: PayloadFormat | str, *, check_url: bool = True) -> tuple[str, SendResult]:
    """Send a sample ``event_type`` event of ``domain`` to ``url`` through the payload, signing and sending
    code of a real delivery; return the URL as sent (checked, normalised) and the result.

    ``check_url`` refuses a URL the target policy does not allow before anything is sent (a
    ``ValidationFailed`` each dialect answers in its shape): the APIs' URLs come from the request. The
    dashboard tests stored URLs, checked when they were subscribed, and passes ``False``; the sender
    applies the policy again at connect time either way.
    """
    if check_url:
        (url,) = await svc.subscriptions.check_urls([url])
    return url, await send_sample(svc.require_sender(), account, domain, event_type, url, payload_format)
