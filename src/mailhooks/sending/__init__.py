"""Sending one signed POST to a subscriber: used by the worker's dispatcher and by the API's test
endpoints, which import it from here rather than from each other."""

from mailhooks.config import HttpClient
from mailhooks.core.targets import TargetPolicy
from mailhooks.sending.pinned import PinnedSender
from mailhooks.sending.sender import PolicyResolver, Sender, SendResult, send_sample

AnySender = Sender | PinnedSender


def open_sender(client: HttpClient, policy: TargetPolicy, timeout: float, limit: int = 512) -> AnySender:
    """The sender on ``client`` (``MAILHOOKS_HTTP_CLIENT``). Call inside the running event loop."""
    if client is HttpClient.AIOHTTP:
        return Sender(policy, timeout=timeout, limit=limit)
    return PinnedSender(policy, timeout=timeout, limit=limit)


__all__ = ["AnySender", "PinnedSender", "PolicyResolver", "SendResult", "Sender", "open_sender", "send_sample"]
