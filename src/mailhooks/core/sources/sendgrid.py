"""SendGrid's Event Webhook: a JSON array of events per POST, signed (ECDSA P-256, SHA-256) over
``timestamp + body`` with SendGrid's key; the operator enters the verification key SendGrid shows
(base64 DER, or PEM). Headers: ``X-Twilio-Email-Event-Webhook-Signature`` (base64 DER signature) and
``X-Twilio-Email-Event-Webhook-Timestamp`` (epoch seconds).

A batch is stored in one transaction: all its events or none (a provider retry re-sends the whole
batch, and the ``sg_event_id`` of each event makes that idempotent).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from mailhooks.core.errors import ValidationFailed
from mailhooks.core.sources.base import (
    Configured,
    Outside,
    Parsed,
    Provider,
    Rejection,
    RequestParts,
    SourceRejected,
    check_timestamp,
    load_json,
    text,
)
from mailhooks.core.sources.classify import Severity, failure
from mailhooks.core.sources.keys import load_public_key

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"

# SendGrid's event names; ``None``: documented, acknowledged, no mailhooks type.
EVENTS: dict[str, str | None] = {
    "processed": "accepted", "delivered": "delivered", "deferred": "temporary_fail", "bounce": "permanent_fail",
    "dropped": "failed", "open": "opened", "click": "clicked", "spamreport": "complained",
    "unsubscribe": "unsubscribed", "group_unsubscribe": "unsubscribed", "group_resubscribe": None,
}
# Fields SendGrid itself sets on every kind of event; any other top-level field is a custom argument.
KNOWN = {"email", "timestamp", "smtp-id", "event", "category", "sg_event_id", "sg_message_id", "reason", "status",
         "response", "attempt", "useragent", "ip", "url", "url_offset", "type", "bounce_classification",
         "asm_group_id", "tls", "cert_err", "marketing_campaign_id", "marketing_campaign_name", "pool",
         "sg_machine_open", "sg_content_type", "sg_template_id", "sg_template_name"}
MAX_EVENTS = 1000


def load_key(value: str) -> ec.EllipticCurvePublicKey:
    key = load_public_key(value, "public_key")
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValidationFailed.field("public_key", "The public_key must be an ECDSA public key.")
    return key


def _item(event: dict[str, Any]) -> dict[str, Any] | None:
    name = event.get("event")
    mapped = EVENTS.get(name) if isinstance(name, str) else None
    if mapped is None:
        return None
    item: dict[str, Any] = {"id": text(event.get("sg_event_id")), "event": mapped, "recipient": event.get("email"),
                            "timestamp": event.get("timestamp"),
                            "source": {"provider": Provider.SENDGRID.value, "event": name}}
    headers = {"message-id": text(event.get("sg_message_id")) or text(event.get("smtp-id"))}
    item["message"] = {"headers": {k: v for k, v in headers.items() if v}}
    category = event.get("category")
    if isinstance(category, str):
        item["tags"] = [category]
    elif isinstance(category, list):
        item["tags"] = [c for c in category if isinstance(c, str)]
    custom = {k: v for k, v in event.items() if k not in KNOWN}
    if custom:
        item["user-variables"] = custom
    status, response = text(event.get("status")), text(event.get("response"))
    reason = text(event.get("reason"))
    if status or response or reason or event.get("attempt") is not None:
        code = status.split(".")[0] + "00" if status and status[:1].isdigit() and "." in status else status
        item["delivery-status"] = {k: v for k, v in {
            "code": int(code) if code and code.isdigit() else None, "enhanced-code": status,
            "message": response or reason, "description": reason, "attempt-no": event.get("attempt"),
        }.items() if v is not None}
    if reason:
        item["reason"] = reason
    if name == "bounce":  # ``type`` says which: a bounce is permanent, a block is not
        item.update(failure(Severity.TEMPORARY if event.get("type") == "blocked" else Severity.PERMANENT))
        if isinstance(event.get("bounce_classification"), str):
            item["bounce-classification"] = event["bounce_classification"]
    elif name == "deferred":
        item.update(failure(Severity.TEMPORARY))
    if isinstance(event.get("url"), str):
        item["url"] = event["url"]
    if isinstance(event.get("ip"), str):
        item["ip"] = event["ip"]
    if isinstance(event.get("useragent"), str):
        item["client-info"] = {"user-agent": event["useragent"]}
    return item


class SendGridSource:
    provider = Provider.SENDGRID

    def configure(self, given: Mapping[str, Any]) -> Configured:
        key = given.get("public_key")
        if not isinstance(key, str) or not key.strip():
            raise ValidationFailed.field("public_key", "The public_key field is required: the verification key "
                                                       "of SendGrid's signed Event Webhook.")
        load_key(key)
        return Configured({"public_key": key.strip()})

    def public(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        return {"public_key": stored["public_key"]}  # a public key: not a secret

    def setup(self, intake_url: str, shown_once: Mapping[str, Any]) -> dict[str, Any]:
        return {"url": intake_url, "events": sorted(k for k, v in EVENTS.items() if v is not None),
                "instructions": "In SendGrid, set this URL as the Event Webhook's HTTP Post URL and turn on "
                                "Signed Event Webhook Requests."}

    async def verify(self, parts: RequestParts, stored: Mapping[str, Any], outside: Outside,
                     now: float | None = None) -> None:
        now = time.time() if now is None else now
        signature, timestamp = parts.headers.get(SIGNATURE_HEADER), parts.headers.get(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise SourceRejected(Rejection.SIGNATURE, "The signature headers are missing.")
        try:
            load_key(stored["public_key"]).verify(base64.b64decode(signature, validate=True),
                                                  timestamp.encode() + parts.body, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, binascii.Error, ValueError) as exc:
            raise SourceRejected(Rejection.SIGNATURE, "The signature does not match.") from exc
        check_timestamp(timestamp, now)

    def parse(self, body: bytes) -> Parsed:
        events = load_json(body)
        if not isinstance(events, list) or not events or not all(isinstance(e, dict) for e in events):
            raise SourceRejected(Rejection.MALFORMED, "The body must be a JSON array of event objects.")
        if len(events) > MAX_EVENTS:
            raise SourceRejected(Rejection.MALFORMED, f"At most {MAX_EVENTS} events per request.")
        for index, event in enumerate(events):
            name = event.get("event")
            if not isinstance(name, str) or name not in EVENTS:
                raise SourceRejected(Rejection.UNKNOWN_EVENT, f"Event {index}: unknown SendGrid event "
                                                              f"{str(name)[:64]!r}.")
            if not isinstance(event.get("sg_event_id"), str):
                raise SourceRejected(Rejection.MALFORMED, f"Event {index}: the sg_event_id is missing.")
        items = [item for item in map(_item, events) if item is not None]
        return Parsed(items, ignored=len(events) - len(items))
