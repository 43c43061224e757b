"""Postal's webhooks: ``{"event", "timestamp", "uuid", "payload"}`` per POST, signed with the Postal
server's RSA key over the raw body: ``X-Postal-Signature`` (base64 RSA-SHA1, PKCS#1 v1.5) and, from newer
Postal, ``X-Postal-Signature-256`` (RSA-SHA256). When the SHA-256 header is present only it is checked,
so a stripped-down request cannot fall back to SHA-1. The operator enters Postal's public key (the ``p=``
value of ``postal default-dkim-record``, or PEM).

No expiry: Postal re-sends a failed webhook with its original body and timestamp, so a timestamp window
would refuse its own retries. A replayed body can only repeat its event, which the ``uuid`` makes idempotent.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailhooks.core.errors import ValidationFailed
from mailhooks.core.sources.base import (
    Configured,
    Outside,
    Parsed,
    Provider,
    Rejection,
    RequestParts,
    SourceRejected,
    load_json,
    text,
)
from mailhooks.core.sources.classify import Severity, failure
from mailhooks.core.sources.keys import load_public_key

SHA1_HEADER = "x-postal-signature"
SHA256_HEADER = "x-postal-signature-256"

EVENTS: dict[str, str | None] = {
    "MessageSent": "delivered", "MessageDelayed": "temporary_fail", "MessageDeliveryFailed": "permanent_fail",
    "MessageBounced": "permanent_fail", "MessageLinkClicked": "clicked", "MessageLoaded": "opened",
    "MessageHeld": None, "DomainDNSError": None, "SendLimitApproaching": None, "SendLimitExceeded": None,
}


def load_key(value: str) -> rsa.RSAPublicKey:
    key = load_public_key(value, "public_key")
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValidationFailed.field("public_key", "The public_key must be an RSA public key.")
    return key


def _item(name: str, event_id: str, payload: dict[str, Any], sent_at: object) -> dict[str, Any]:
    mapped = EVENTS[name]
    message = payload.get("original_message") if name == "MessageBounced" else payload.get("message")
    message = message if isinstance(message, dict) else {}
    item: dict[str, Any] = {"id": event_id, "event": mapped, "recipient": message.get("to"),
                            "timestamp": sent_at if isinstance(sent_at, int | float) else None,
                            "source": {"provider": Provider.POSTAL.value, "event": name}}
    headers = {"message-id": text(message.get("message_id")), "from": text(message.get("from")),
               "subject": text(message.get("subject"))}
    item["message"] = {"headers": {k: v for k, v in headers.items() if v}}
    if isinstance(message.get("tag"), str) and message["tag"]:
        item["tags"] = [message["tag"]]
    if name in ("MessageSent", "MessageDelayed", "MessageDeliveryFailed"):
        item["delivery-status"] = {k: v for k, v in {
            "message": text(payload.get("output")), "description": text(payload.get("details")),
            "tls": payload.get("sent_with_ssl") if isinstance(payload.get("sent_with_ssl"), bool) else None,
        }.items() if v is not None}
    if name == "MessageDelayed":
        item.update(failure(Severity.TEMPORARY))
    elif name in ("MessageDeliveryFailed", "MessageBounced"):
        item.update(failure(Severity.PERMANENT))
        item["reason"] = "bounce" if name == "MessageBounced" else (text(payload.get("status")) or "HardFail")
    if name in ("MessageLinkClicked", "MessageLoaded"):
        if isinstance(payload.get("ip_address"), str):
            item["ip"] = payload["ip_address"]
        if isinstance(payload.get("user_agent"), str):
            item["client-info"] = {"user-agent": payload["user_agent"]}
    if name == "MessageLinkClicked" and isinstance(payload.get("url"), str):
        item["url"] = payload["url"]
    return item


class PostalSource:
    provider = Provider.POSTAL

    def configure(self, given: Mapping[str, Any]) -> Configured:
        key = given.get("public_key")
        if not isinstance(key, str) or not key.strip():
            raise ValidationFailed.field("public_key", "The public_key field is required: the Postal server's "
                                                       "signing key (the p= value of its DKIM-style record).")
        load_key(key)
        return Configured({"public_key": key.strip()})

    def public(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        return {"public_key": stored["public_key"]}

    def setup(self, intake_url: str, shown_once: Mapping[str, Any]) -> dict[str, Any]:
        return {"url": intake_url, "events": sorted(k for k, v in EVENTS.items() if v is not None),
                "instructions": "In Postal, add a webhook to the mail server with this URL and the events to forward."}

    async def verify(self, parts: RequestParts, stored: Mapping[str, Any], outside: Outside,
                     now: float | None = None) -> None:
        sha256, sha1 = parts.headers.get(SHA256_HEADER), parts.headers.get(SHA1_HEADER)
        signature, algorithm = (sha256, hashes.SHA256()) if sha256 else (sha1, hashes.SHA1())  # noqa: S303
        if not signature:
            raise SourceRejected(Rejection.SIGNATURE, "The X-Postal-Signature header is missing.")
        try:
            load_key(stored["public_key"]).verify(base64.b64decode(signature, validate=True), parts.body,
                                                  padding.PKCS1v15(), algorithm)
        except (InvalidSignature, binascii.Error, ValueError) as exc:
            raise SourceRejected(Rejection.SIGNATURE, "The signature does not match.") from exc

    def parse(self, body: bytes) -> Parsed:
        data = load_json(body)
        if not isinstance(data, dict) or not isinstance(data.get("event"), str) \
                or not isinstance(data.get("payload"), dict) or not isinstance(data.get("uuid"), str):
            raise SourceRejected(Rejection.MALFORMED, "The body needs event, uuid and a payload object.")
        name = data["event"]
        if name not in EVENTS:
            raise SourceRejected(Rejection.UNKNOWN_EVENT, f"Unknown Postal event {name[:64]!r}.")
        if EVENTS[name] is None:
            return Parsed([], ignored=1)
        return Parsed([_item(name, data["uuid"], data["payload"], data.get("timestamp"))])
