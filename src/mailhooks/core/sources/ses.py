"""Amazon SES through Amazon SNS: SNS POSTs a signed JSON envelope whose ``Message`` is SES's own JSON
(identity notifications, ``notificationType``, or configuration-set event publishing, ``eventType``).

Authentication: the envelope's ``Signature`` (SignatureVersion 1: RSA-SHA1, 2: RSA-SHA256) over SNS's
canonical string, checked with the certificate at ``SigningCertURL``, which must be an https URL on an
Amazon SNS host (``sns.<region>.amazonaws.com``; ``MAILHOOKS_SNS_CERT_HOSTS`` adds stand-ins for tests).
Every SNS topic is signed by the same Amazon certificate, so the source is bound to one ``TopicArn`` that
the operator enters: a message of any other topic is refused. No timestamp window: SNS retries re-send
the same signed message. A ``SubscriptionConfirmation`` is confirmed by fetching its ``SubscribeURL``
(same host rule). SNS *raw message delivery* carries no signature and is refused.

One event per SES recipient; the id is the SNS ``MessageId`` and the recipient's position, so an SNS
retry is idempotent.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
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
    epoch,
    load_json,
    text,
)
from mailhooks.core.sources.classify import Severity, failure

SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$")
SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
# SES kinds (``notificationType`` / ``eventType``); ``None``: acknowledged, no mailhooks type.
KINDS: dict[str, str | None] = {
    "Bounce": "bounce", "Complaint": "complained", "Delivery": "delivered", "Send": "accepted", "Reject": "failed",
    "Open": "opened", "Click": "clicked", "DeliveryDelay": "temporary_fail", "Rendering Failure": "failed",
    "Subscription": None, "AmazonSnsSubscriptionSucceeded": None,
}


def allowed_url(url: object, extra_hosts: tuple[str, ...]) -> str:
    """``url`` if it may be fetched: https on an Amazon SNS host, or any scheme on an operator's stand-in."""
    if not isinstance(url, str):
        raise SourceRejected(Rejection.SIGNATURE, "The SNS message names no certificate or subscription URL.")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and SNS_HOST.match(host) and parts.port in (None, 443):
        return url
    if parts.scheme in ("http", "https") and (parts.netloc.lower() in extra_hosts or host in extra_hosts):
        return url
    raise SourceRejected(Rejection.SIGNATURE, "The SNS URL is not on an Amazon SNS host.")


def _canonical(envelope: Mapping[str, Any]) -> bytes:
    keys = SIGNED_KEYS[envelope["Type"]]
    return "".join(f"{key}\n{envelope[key]}\n" for key in keys if isinstance(envelope.get(key), str)).encode()


def _recipients(kind: str, message: dict[str, Any]) -> list[tuple[object, dict[str, Any]]]:
    """``(address, per-recipient details)`` for each recipient the SES message is about."""
    detail: dict[str, Any] = message[_detail_key(kind)] if isinstance(message.get(_detail_key(kind)), dict) else {}
    listed = {"Bounce": "bouncedRecipients", "Complaint": "complainedRecipients",
              "DeliveryDelay": "delayedRecipients"}.get(kind)
    if listed is not None and isinstance(detail.get(listed), list):
        return [(r.get("emailAddress"), r) for r in detail[listed] if isinstance(r, dict)]
    if kind == "Delivery" and isinstance(detail.get("recipients"), list):
        return [(r, {}) for r in detail["recipients"]]
    mail: dict[str, Any] = message["mail"] if isinstance(message.get("mail"), dict) else {}
    return [(r, {}) for r in mail.get("destination") or [] if isinstance(r, str)]


def _detail_key(kind: str) -> str:
    return {"Rendering Failure": "failure", "DeliveryDelay": "deliveryDelay"}.get(kind, kind[:1].lower() + kind[1:])


def _items(sns_id: str, message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    mail: dict[str, Any] = message["mail"] if isinstance(message.get("mail"), dict) else {}
    detail: dict[str, Any] = message[_detail_key(kind)] if isinstance(message.get(_detail_key(kind)), dict) else {}
    common: dict[str, Any] = mail["commonHeaders"] if isinstance(mail.get("commonHeaders"), dict) else {}
    headers = {"message-id": text(common.get("messageId")) or text(mail.get("messageId")),
               "subject": text(common.get("subject")), "from": text(mail.get("source"))}
    tags = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in (mail.get("tags") or {}).items()
            if not k.startswith("ses:")} if isinstance(mail.get("tags"), dict) else {}
    base: dict[str, Any] = {"timestamp": epoch(detail.get("timestamp")) or epoch(mail.get("timestamp")),
                            "message": {"headers": {k: v for k, v in headers.items() if v}},
                            "source": {"provider": Provider.SES.value, "event": kind},
                            "envelope": {k: v for k, v in {"sender": text(mail.get("source")),
                                                           "sending-ip": text(mail.get("sourceIp"))}.items() if v}}
    if tags:
        base["user-variables"] = tags
    if kind == "Bounce":
        permanent = detail.get("bounceType") == "Permanent"
        base.update(failure(Severity.PERMANENT if permanent else Severity.TEMPORARY))
        base["reason"] = "bounce"
        base["bounce-classification"] = f"{detail.get('bounceType')}/{detail.get('bounceSubType')}"
    elif kind == "DeliveryDelay":
        base.update(failure(Severity.TEMPORARY))
        base["reason"] = text(detail.get("delayType"))
    elif kind in ("Reject", "Rendering Failure"):
        base["event"] = "failed"
        base["reason"] = text(detail.get("reason")) or text(detail.get("errorMessage"))
    else:
        base["event"] = KINDS[kind]
    if kind in ("Open", "Click"):
        base.update({k: v for k, v in {"ip": text(detail.get("ipAddress")), "url": text(detail.get("link"))}.items()
                     if v})
        if text(detail.get("userAgent")):
            base["client-info"] = {"user-agent": detail["userAgent"]}
    items = []
    for index, (address, per_recipient) in enumerate(_recipients(kind, message)):
        item = {**base, "id": f"{sns_id}:{index}", "recipient": address}
        status = {"code": None, "enhanced-code": text(per_recipient.get("status")),
                  "message": text(per_recipient.get("diagnosticCode")) or text(detail.get("smtpResponse")),
                  "mx-host": text(detail.get("reportingMTA")) or text(detail.get("remoteMtaIp"))}
        status = {k: v for k, v in status.items() if v}
        if status:
            item["delivery-status"] = status
        items.append(item)
    return items


class SesSource:
    provider = Provider.SES

    def configure(self, given: Mapping[str, Any]) -> Configured:
        arn = given.get("topic_arn")
        if not isinstance(arn, str) or not TOPIC_ARN.match(arn.strip()):
            raise ValidationFailed.field("topic_arn", "The topic_arn field is required: the ARN of the SNS topic "
                                                      "SES publishes to (arn:aws:sns:REGION:ACCOUNT:NAME).")
        return Configured({"topic_arn": arn.strip()})

    def public(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        return {"topic_arn": stored["topic_arn"]}

    def setup(self, intake_url: str, shown_once: Mapping[str, Any]) -> dict[str, Any]:
        return {"url": intake_url, "events": sorted(k for k, v in KINDS.items() if v is not None),
                "instructions": "In Amazon SNS, subscribe this URL (protocol HTTPS, raw message delivery off) to "
                                "the topic; mailhooks confirms the subscription itself."}

    async def verify(self, parts: RequestParts, stored: Mapping[str, Any], outside: Outside,
                     now: float | None = None) -> None:
        envelope = load_json(parts.body)
        if not isinstance(envelope, dict) or "Signature" not in envelope or "Type" not in envelope:
            raise SourceRejected(Rejection.SIGNATURE, "Not a signed SNS message (turn raw message delivery off).")
        if envelope.get("Type") not in SIGNED_KEYS or not all(
                isinstance(envelope.get(k), str) for k in ("Message", "MessageId", "Timestamp", "TopicArn")):
            raise SourceRejected(Rejection.MALFORMED, "The SNS message lacks its Type, Message, MessageId, "
                                                      "Timestamp or TopicArn.")
        if envelope["TopicArn"] != stored["topic_arn"]:
            raise SourceRejected(Rejection.SIGNATURE, "The SNS message is from another topic.")
        version = envelope.get("SignatureVersion")
        algorithm: hashes.HashAlgorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
        if version not in ("1", "2"):
            raise SourceRejected(Rejection.SIGNATURE, "Unknown SNS SignatureVersion.")
        certificate_url = allowed_url(envelope.get("SigningCertURL"), outside.sns_hosts)
        if envelope["Type"] != "Notification":
            allowed_url(envelope.get("SubscribeURL"), outside.sns_hosts)
        try:
            key = x509.load_pem_x509_certificate(await outside.fetch(certificate_url)).public_key()
        except ValueError as exc:
            raise SourceRejected(Rejection.CERTIFICATE, "The SNS signing certificate is not a certificate.") from exc
        if not isinstance(key, rsa.RSAPublicKey):
            raise SourceRejected(Rejection.SIGNATURE, "The SNS signing certificate has no RSA key.")
        try:
            key.verify(base64.b64decode(str(envelope["Signature"]), validate=True), _canonical(envelope),
                       padding.PKCS1v15(), algorithm)
        except (InvalidSignature, binascii.Error, ValueError) as exc:
            raise SourceRejected(Rejection.SIGNATURE, "The SNS signature does not match.") from exc

    def parse(self, body: bytes) -> Parsed:
        envelope = load_json(body)
        if envelope["Type"] == "SubscriptionConfirmation":
            return Parsed([], ignored=0, confirm_url=envelope["SubscribeURL"])
        if envelope["Type"] != "Notification":
            return Parsed([], ignored=1)
        try:
            message = load_json(envelope["Message"].encode())
        except SourceRejected:
            message = None
        kind = message.get("notificationType") or message.get("eventType") if isinstance(message, dict) else None
        if not isinstance(kind, str):
            raise SourceRejected(Rejection.MALFORMED, "The SNS Message is not an SES notification.")
        if kind not in KINDS:
            raise SourceRejected(Rejection.UNKNOWN_EVENT, f"Unknown SES event {kind[:64]!r}.")
        if KINDS[kind] is None:
            return Parsed([], ignored=1)
        assert isinstance(message, dict)
        items = _items(envelope["MessageId"], message, kind)
        if not items:
            raise SourceRejected(Rejection.MALFORMED, "The SES notification names no recipient.")
        return Parsed(items)
