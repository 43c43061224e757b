"""What a delivery looks like on the wire: bodies per payload format, and every signature.

- ``mailgun``: ``{"signature": {timestamp, token, signature}, "event-data": {...}}`` where
  signature = hex HMAC-SHA256(account signing key, timestamp + token) (docs/dialects/mailgun.md#signatures).
- ``kirim``: flat fields plus ``signature`` = hex HMAC-SHA256(key = domain secret + message_guid,
  message = b"") (docs/dialects/kirimemail.md#signatures).
- Every delivery also carries Standard Webhooks headers signed with the account signing key
  (docs/dialects/README.md#standard-webhooks-headers).

The event-data JSON is encoded once per event and spliced into each attempt's body, so fan-out and
retries only pay for the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from mailhooks import __version__

USER_AGENT = f"mailhooks/{__version__}"


class PayloadFormat(StrEnum):
    """The body a webhook receives; stored as its value on each webhook row."""

    MAILGUN = "mailgun"
    KIRIM = "kirim"
    OPERATIONAL = "operational"  # operational events (core.operational): the stored payload as it is


FAIL_SEVERITY = {"permanent_fail": "permanent", "temporary_fail": "temporary"}
LOG_LEVEL = {"permanent_fail": "error", "temporary_fail": "warn", "complained": "warn", "failed": "error",
             "bounced": "error", "deferred": "warn"}


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def new_event_id() -> str:
    """22 URL-safe base64 characters, like Mailgun's event ids."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _domain_of(address: object) -> str:
    if isinstance(address, str) and "@" in address:
        return address.rsplit("@", 1)[1].strip().strip(">").lower()
    return ""


def canonical_event(
    event_type: str,
    fields: dict[str, Any],
    *,
    event_id: str,
    domain: str,
    account_guid: str,
    occurred_at: float,
) -> dict[str, Any]:
    """The stored event-data: Mailgun's field names, with ``event`` holding the canonical type.

    Unknown optional fields are kept verbatim: receivers must tolerate added fields anyway.
    """
    data: dict[str, Any] = {k: v for k, v in fields.items() if v is not None and k not in ("domain", "event", "id")}
    data["id"] = event_id
    data["event"] = event_type
    data["timestamp"] = occurred_at
    recipient = data.get("recipient")
    data.setdefault("recipient-domain", _domain_of(recipient))
    data.setdefault("tags", [])
    data.setdefault("user-variables", {})
    data.setdefault("campaigns", [])
    data["domain"] = {"name": domain}
    data["account"] = {"id": account_guid}
    return data


def mailgun_event_data(event: dict[str, Any]) -> dict[str, Any]:
    """Canonical event-data in Mailgun's vocabulary: the two fail types become ``failed`` + ``severity``."""
    data = dict(event)
    event_type = data.get("event", "")
    if event_type in FAIL_SEVERITY:
        data["event"] = "failed"
        data["severity"] = FAIL_SEVERITY[event_type]
    data.setdefault("log-level", LOG_LEVEL.get(event_type, "info"))
    return data


def kirim_signature(domain_secret: str, message_guid: str) -> str:
    return hmac.new((domain_secret + message_guid).encode(), b"", hashlib.sha256).hexdigest()


def kirim_fields(event: dict[str, Any], domain_secret: str) -> dict[str, Any]:
    headers = (event.get("message") or {}).get("headers") or {}
    envelope = event.get("envelope") or {}
    sender = headers.get("from") or envelope.get("sender") or ""
    tags = event.get("tags") or []
    message_guid = str(event.get("id"))
    detail = {k: event[k] for k in ("delivery-status", "reason", "severity", "url", "ip", "geolocation",
                                    "client-info", "user-variables") if k in event}
    event_type = event.get("event", "")
    return {
        "message_guid": message_guid,
        "type": "email",
        "event_type": event_type,
        "event": event_type,
        "sender": sender,
        "sender_domain": _domain_of(sender),
        "sender_ip": envelope.get("sending-ip", ""),
        "recipient": event.get("recipient", ""),
        "recipient_domain": event.get("recipient-domain") or _domain_of(event.get("recipient")),
        "recipient_ip": event.get("ip", ""),
        "subject": headers.get("subject", ""),
        "status": event_type,
        "tags": ",".join(str(t) for t in tags) if isinstance(tags, list) else str(tags),
        "event_detail": orjson.dumps(detail).decode(),
        "timestamp": int(float(event.get("timestamp") or 0)),
        "domain": (event.get("domain") or {}).get("name", ""),
        "signature": kirim_signature(domain_secret, message_guid),
    }


def mailgun_signature(signing_key: str, timestamp: str | None = None, token: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    token = token or secrets.token_hex(25)
    digest = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": digest}


def standard_signature(signing_key: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """An event encoded once for one payload format; ``render`` signs it for one attempt."""

    payload_format: PayloadFormat
    encoded: bytes  # mailgun: the event-data JSON; kirim: the whole body (its signature is per message)

    @classmethod
    def prepare(cls, payload_format: str, event: dict[str, Any], domain_secret: str) -> PreparedEvent:
        """``payload_format`` as stored (a ``PayloadFormat`` value); anything but ``kirim`` is Mailgun's."""
        if payload_format == PayloadFormat.KIRIM:
            return cls(PayloadFormat.KIRIM, dumps(kirim_fields(event, domain_secret)))
        if payload_format == PayloadFormat.OPERATIONAL:
            return cls(PayloadFormat.OPERATIONAL, dumps(event))
        return cls(PayloadFormat.MAILGUN, dumps(mailgun_event_data(event)))

    def render(self, signing_key: str, msg_id: str, now: float | None = None, previous_key: str | None = None,
               previous_until: float = 0.0) -> tuple[bytes, dict[str, str]]:
        """Body and headers for one attempt, freshly signed. ``previous_key`` (the key before a rotation)
        adds its Standard Webhooks signature while the attempt is before ``previous_until``; the body's
        own signature (Mailgun's) is made with ``signing_key`` only, as Mailgun does."""
        moment = now if now is not None else time.time()
        ts = int(moment)
        if self.payload_format != PayloadFormat.MAILGUN:  # the whole body, signed by the headers alone
            body = self.encoded
        else:
            signature = dumps(mailgun_signature(signing_key, str(ts)))
            body = b'{"signature":' + signature + b',"event-data":' + self.encoded + b"}"
        signatures = standard_signature(signing_key, msg_id, ts, body)
        if previous_key is not None and previous_until > moment:
            # Standard Webhooks: space-separated signatures, a receiver accepts any one it can verify.
            signatures += " " + standard_signature(previous_key, msg_id, ts, body)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": signatures,
        }
        return body, headers


SAMPLE_RECIPIENT = "alice@example.com"


def sample_event(event_type: str, domain: str, account_guid: str) -> dict[str, Any]:
    """A realistic event for the dialects' ``test`` endpoints."""
    fields: dict[str, Any] = {
        "recipient": SAMPLE_RECIPIENT,
        "message": {"headers": {"message-id": f"test.{secrets.token_hex(6)}@{domain}", "from": f"sender@{domain}",
                                "to": SAMPLE_RECIPIENT, "subject": "mailhooks test event"}},
        "tags": ["test"],
    }
    if event_type in FAIL_SEVERITY:
        # What real failures carry: a hard bounce says "bounce" (anymail maps it to "bounced"),
        # a temporary one "generic".
        fields["reason"] = "bounce" if event_type == "permanent_fail" else "generic"
        fields["delivery-status"] = {"code": 550 if event_type == "permanent_fail" else 451, "message": "test"}
    if event_type == "clicked":
        fields["url"] = "https://example.com/"
    return canonical_event(event_type, fields, event_id=new_event_id(), domain=domain, account_guid=account_guid,
                           occurred_at=time.time())
