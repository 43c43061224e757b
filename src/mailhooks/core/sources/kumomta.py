"""KumoMTA's log records, POSTed by a log hook (``kumo.configure_log_hook`` with a webhook queue): one JSON
record per POST, or a JSON array of them when the hook batches. Each record is one event of one message.

Authentication: KumoMTA signs nothing, so the hook sends a shared secret that mailhooks makes when the
source is created (shown once, kept as its SHA-256): ``Authorization: Bearer SECRET``. Records carry no
event id of their own (``id`` is the message's spool id, the same for all its events), so the id is a
digest of the record: the hook's retry of a record gets the same id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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

MAX_RECORDS = 1000
# KumoMTA's record types; ``None``: documented, acknowledged, no mailhooks type (an inbound SMTP refusal,
# re-routing, …).
EVENTS: dict[str, str | None] = {
    "Reception": "accepted", "Delivery": "delivered", "TransientFailure": "temporary_fail",
    "Bounce": "permanent_fail", "Expiration": "permanent_fail", "OOB": "permanent_fail", "AdminBounce": "failed",
    "Feedback": "complained", "Rejection": None, "AdminRebind": None, "Delayed": None, "Any": None,
}


def _status(response: object) -> dict[str, Any] | None:
    if not isinstance(response, dict):
        return None
    enhanced = response.get("enhanced_code")
    code = ".".join(str(enhanced.get(k)) for k in ("class", "subject", "detail")) if isinstance(enhanced, dict) \
        else None
    status = {"code": response.get("code") if isinstance(response.get("code"), int) else None,
              "enhanced-code": code, "message": text(response.get("content")),
              "command": text(response.get("command"))}
    return {k: v for k, v in status.items() if v is not None}


def _item(record: dict[str, Any]) -> dict[str, Any] | None:
    name = record["type"]
    mapped = EVENTS[name]
    if mapped is None:
        return None
    item: dict[str, Any] = {"id": digest_id("kumo", record), "event": mapped, "recipient": record.get("recipient"),
                            "timestamp": epoch(record.get("timestamp")),
                            "source": {"provider": Provider.KUMOMTA.value, "event": name}}
    headers: dict[str, Any] = record["headers"] if isinstance(record.get("headers"), dict) else {}
    message_id = next((v for k, v in headers.items() if k.lower() == "message-id"), None)
    item["message"] = {"headers": {"message-id": message_id} if isinstance(message_id, str) else {}}
    envelope = {"sender": text(record.get("sender")), "targets": text(record.get("recipient")),
                "sending-ip": text(record.get("source_address")), "spool-id": text(record.get("id")),
                "queue": text(record.get("queue"))}
    item["envelope"] = {k: v for k, v in envelope.items() if v is not None}
    if isinstance(record.get("meta"), dict) and record["meta"]:
        item["user-variables"] = record["meta"]
    status = _status(record.get("response"))
    if status:
        item["delivery-status"] = status
    classification = text(record.get("bounce_classification"))
    if classification:
        item["bounce-classification"] = classification
    if name == "TransientFailure":
        item.update(failure(Severity.TEMPORARY))
    elif name in ("Bounce", "OOB"):
        item.update(failure(Severity.PERMANENT))
        item["reason"] = "bounce"
    elif name == "Expiration":  # gave up retrying: the message failed, the address is not known to be bad
        item.update(failure(Severity.PERMANENT))
        item["reason"] = "old"
    elif name == "AdminBounce":
        item["reason"] = "admin-bounce"
    return item


class KumoMtaSource:
    provider = Provider.KUMOMTA

    def configure(self, given: Mapping[str, Any]) -> Configured:
        secret = new_secret()
        return Configured({"secret_sha256": secret_hash(secret)}, {"secret": secret})

    def public(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        return {"secret": "set"}

    def setup(self, intake_url: str, shown_once: Mapping[str, Any]) -> dict[str, Any]:
        return {"url": intake_url, "events": sorted(k for k, v in EVENTS.items() if v is not None),
                "headers": {"Authorization": f"Bearer {shown_once['secret']}"},
                "instructions": "In KumoMTA, send the log hook's records to this URL (one record per POST, or a "
                                "JSON array) with this Authorization header. The secret is shown only now."}

    async def verify(self, parts: RequestParts, stored: Mapping[str, Any], outside: Outside,
                     now: float | None = None) -> None:
        scheme, _, secret = parts.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not same_secret(secret.strip(), stored["secret_sha256"]):
            raise SourceRejected(Rejection.SIGNATURE, "The Authorization header is missing or wrong.")

    def parse(self, body: bytes) -> Parsed:
        data = load_json(body)
        records = data if isinstance(data, list) else [data]
        if not records or len(records) > MAX_RECORDS \
                or not all(isinstance(r, dict) and isinstance(r.get("type"), str) for r in records):
            raise SourceRejected(Rejection.MALFORMED, f"The body must be a log record (an object with a type) or an "
                                                      f"array of 1 to {MAX_RECORDS} of them.")
        for index, record in enumerate(records):
            if record["type"] not in EVENTS:
                raise SourceRejected(Rejection.UNKNOWN_EVENT,
                                     f"Record {index}: unknown KumoMTA record type {record['type'][:64]!r}.")
        items = [item for item in map(_item, records) if item is not None]
        return Parsed(items, ignored=len(records) - len(items))
