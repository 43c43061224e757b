"""Postmark's webhooks: one JSON record per POST, ``RecordType`` Delivery, Bounce, SpamComplaint, Open,
Click or SubscriptionChange.

Authentication: Postmark signs nothing; it sends HTTP Basic credentials that the operator writes into
the webhook URL (``https://USER:PASSWORD@host/…``). mailhooks makes the pair when the source is created,
shows the password once and keeps only its SHA-256. Postmark's records carry no event id, so the id is a
digest of the record (a retry sends the same record, so it gets the same id).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from mailhooks.core.sources.base import (
    Configured,
    Outside,
    Parsed,
    Provider,
    Rejection,
    RequestParts,
    SourceRejected,
    digest_id,
    epoch,
    load_json,
    new_secret,
    same_secret,
    secret_hash,
    text,
)
from mailhooks.core.sources.classify import Severity, failure

RECORD_TYPES = ("Delivery", "Bounce", "SpamComplaint", "Open", "Click", "SubscriptionChange")
# Bounce types after which Postmark will not send to the address again (besides any with ``Inactive``).
PERMANENT_BOUNCES = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "SpamNotification", "Blocked",
                     "DMARCPolicy"}
# Bounce records that are not a failed delivery at all.
NOT_FAILURES = {"AutoResponder", "AddressChange", "Subscribe", "Unsubscribe", "OpenRelayTest",
                "ChallengeVerification"}
TIME_FIELDS = {"Delivery": "DeliveredAt", "Bounce": "BouncedAt", "SpamComplaint": "BouncedAt",
               "Open": "ReceivedAt", "Click": "ReceivedAt", "SubscriptionChange": "ChangedAt"}


def _client(record: dict[str, Any]) -> dict[str, Any]:
    client: dict[str, Any] = record["Client"] if isinstance(record.get("Client"), dict) else {}
    os_info: dict[str, Any] = record["OS"] if isinstance(record.get("OS"), dict) else {}
    info = {"user-agent": record.get("UserAgent"), "client-name": client.get("Name"),
            "client-os": os_info.get("Name"), "device-type": record.get("Platform")}
    return {k: v for k, v in info.items() if isinstance(v, str)}


def _item(record: dict[str, Any]) -> dict[str, Any] | None:
    kind = record["RecordType"]
    recipient = record.get("Email") if kind in ("Bounce", "SpamComplaint") else record.get("Recipient")
    item: dict[str, Any] = {"id": digest_id("pm", record), "recipient": recipient,
                            "timestamp": epoch(record.get(TIME_FIELDS[kind])),
                            "source": {"provider": Provider.POSTMARK.value, "event": kind}}
    if text(record.get("MessageID")):
        item["message"] = {"headers": {"message-id": text(record.get("MessageID"))}}
    if isinstance(record.get("Tag"), str) and record["Tag"]:
        item["tags"] = [record["Tag"]]
    if isinstance(record.get("Metadata"), dict):
        item["user-variables"] = record["Metadata"]
    if kind == "Delivery":
        item["event"] = "delivered"
        if isinstance(record.get("Details"), str):
            item["delivery-status"] = {"message": record["Details"]}
    elif kind == "Bounce":
        bounce_type = text(record.get("Type")) or ""
        if bounce_type in NOT_FAILURES and not record.get("Inactive"):
            return None
        permanent = bounce_type in PERMANENT_BOUNCES or record.get("Inactive") is True
        item.update(failure(Severity.PERMANENT if permanent else Severity.TEMPORARY))
        item["reason"] = bounce_type
        item["delivery-status"] = {k: v for k, v in {
            "description": text(record.get("Description")), "message": text(record.get("Details")),
            "bounce-type-code": record.get("TypeCode")}.items() if v is not None}
    elif kind == "SpamComplaint":
        item["event"] = "complained"
    elif kind == "Open":
        item["event"] = "opened"
        item["client-info"] = _client(record)
        geo = record.get("Geo")
        if isinstance(geo, dict) and isinstance(geo.get("IP"), str):
            item["ip"] = geo["IP"]
            item["geolocation"] = {k.lower(): v for k, v in geo.items() if k in ("Country", "Region", "City")}
    elif kind == "Click":
        item["event"] = "clicked"
        item["client-info"] = _client(record)
        if isinstance(record.get("OriginalLink"), str):
            item["url"] = record["OriginalLink"]
        geo = record.get("Geo")
        if isinstance(geo, dict) and isinstance(geo.get("IP"), str):
            item["ip"] = geo["IP"]
    else:  # SubscriptionChange: only a suppression is an event; reactivation has no mailhooks type
        if record.get("SuppressSending") is not True:
            return None
        reason = text(record.get("SuppressionReason")) or ""
        if reason == "HardBounce":
            item.update(failure(Severity.PERMANENT))
        else:
            item["event"] = "complained" if reason == "SpamComplaint" else "unsubscribed"
        item["reason"] = reason
    return item


class PostmarkSource:
    provider = Provider.POSTMARK

    def configure(self, given: Mapping[str, Any]) -> Configured:
        username, password = "postmark", new_secret()
        return Configured({"username": username, "password_sha256": secret_hash(password)},
                          {"username": username, "password": password})

    def public(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        return {"username": stored["username"], "password": "set"}

    def setup(self, intake_url: str, shown_once: Mapping[str, Any]) -> dict[str, Any]:
        parts = urlsplit(intake_url)
        user, password = quote(shown_once["username"], safe=""), quote(shown_once["password"], safe="")
        url = urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc}"))
        return {"url": url, "events": list(RECORD_TYPES),
                "instructions": "In Postmark, add this URL (it carries the credentials) as a webhook of the "
                                "message stream and tick the events to forward. The password is shown only now."}

    async def verify(self, parts: RequestParts, stored: Mapping[str, Any], outside: Outside,
                     now: float | None = None) -> None:
        scheme, _, value = parts.headers.get("authorization", "").partition(" ")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode() if scheme.lower() == "basic" else ""
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        username, sep, password = decoded.partition(":")
        if not sep or username != stored["username"] or not same_secret(password, stored["password_sha256"]):
            raise SourceRejected(Rejection.SIGNATURE, "The credentials in the URL are missing or wrong.")

    def parse(self, body: bytes) -> Parsed:
        record = load_json(body)
        if not isinstance(record, dict) or not isinstance(record.get("RecordType"), str):
            raise SourceRejected(Rejection.MALFORMED, "The body must be a JSON object with a RecordType.")
        if record["RecordType"] not in RECORD_TYPES:
            raise SourceRejected(Rejection.UNKNOWN_EVENT,
                                 f"Unknown Postmark RecordType {record['RecordType'][:64]!r}.")
        item = _item(record)
        return Parsed([item] if item is not None else [], ignored=0 if item is not None else 1)
