"""Sending one signed POST to a subscriber: used by the worker's dispatcher and by the API's test
endpoints, which import it from here rather than from each other."""

from mailhooks.sending.sender import PolicyResolver, Sender, SendResult, send_sample

__all__ = ["PolicyResolver", "SendResult", "Sender", "send_sample"]
