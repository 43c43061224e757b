"""Mailgun's own webhook POSTs (JSON: ``{"signature": {timestamp, token, signature}, "event-data": {…}}``).

Authentication: hex HMAC-SHA256 of ``timestamp + token`` under the domain's webhook signing key, which
the operator copies from Mailgun into the source. Mailgun signs neither the body nor the URL, so a
captured signature could carry another body: besides the 5-minute timestamp window, each process
remembers the tokens it saw (with a digest of their body) for that window, and refuses a token reused
with a different body. The same body again is a retry, and idempotent anyway (the event id).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from mailhooks.core.errors import ValidationFailed
from mailhooks.core.sources.base import (
    MAX_SKEW_SECONDS,
    Configured,
    Outside,
    Parsed,
    Provider,
    Rejection,
    RequestParts,
    SourceRejected,
    check_timestamp,
    load_json,
)
from mailhooks.core.sources.classify import Severity, failure

# Mailgun's event names; ``None``: documented, acknowledged, but no mailhooks type.
EVENTS: dict[str, str | None] = {
    "accepted": "accepted", "delivered": "delivered", "opened": "opened", "clicked": "clicked",
    "unsubscribed": "unsubscribed", "complained": "complained", "failed": "failed", "rejected": "failed",
    "stored": None, "list_member_uploaded": None, "list_member_upload_error": None, "list_uploaded": None,
}


class TokenMemory:
    """Tokens seen in the last ``MAX_SKEW_SECONDS`` with their body digest, at most ``limit`` of them."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def check(self, token: str, body: bytes, now: float) -> None:
        while self._seen and (next(iter(self._seen.values()))[0] < now - MAX_SKEW_SECONDS
                              or len(self._seen) > self.limit):
            self._seen.popitem(last=False)
        digest = hashlib.sha256(body).digest()
        seen = self._seen.get(token)
        if seen is not None and seen[1] != digest:
            raise SourceRejected(Rejection.REPLAYED, "The signature token was already used for another body.")
        if seen is None:
            self._seen[token] = (now, digest)


class MailgunSource:
    provider = Provider.MAILGUN

    def __init__(self) -> None:
        self.tokens = TokenMemory()

    def configure(self, given: Mapping[str, Any]) -> Configured:
        key = given.get("signing_key")
        if not isinstance(key, str) or not 8 <= len(key.strip()) <= 256:
            raise ValidationFailed.field("signing_key", "The signing_key field is required: Mailgun's HTTP webhook "
                                                        "signing key of the domain.")
        return Configured({"signing_key": key.strip()})

    def public(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        return {"signing_key": "set"}

    def setup(self, intake_url: str, shown_once: Mapping[str, Any]) -> dict[str, Any]:
        return {"url": intake_url, "events": sorted(k for k, v in EVENTS.items() if v is not None),
                "instructions": "In Mailgun, add this URL as the domain's webhook for each event to forward."}

    async def verify(self, parts: RequestParts, stored: Mapping[str, Any], outside: Outside,
                     now: float | None = None) -> None:
        now = time.time() if now is None else now
        body = load_json(parts.body)
        signature = body.get("signature") if isinstance(body, dict) else None
        if not isinstance(signature, dict):
            raise SourceRejected(Rejection.SIGNATURE, "The signature object is missing.")
        timestamp, token, given = (signature.get(k) for k in ("timestamp", "token", "signature"))
        if not isinstance(token, str) or not isinstance(given, str) or not isinstance(timestamp, str | int):
            raise SourceRejected(Rejection.SIGNATURE, "The signature needs timestamp, token and signature.")
        expected = hmac.new(stored["signing_key"].encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
        if not hmac.compare_digest(expected.hexdigest(), given.lower()):
            raise SourceRejected(Rejection.SIGNATURE, "The signature does not match.")
        check_timestamp(timestamp, now)
        self.tokens.check(token, parts.body, now)

    def parse(self, body: bytes) -> Parsed:
        data = load_json(body)
        event = data.get("event-data") if isinstance(data, dict) else None
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise SourceRejected(Rejection.MALFORMED, "The body needs an event-data object with an event.")
        name = event["event"]
        if name not in EVENTS:
            raise SourceRejected(Rejection.UNKNOWN_EVENT, f"Unknown Mailgun event {name[:64]!r}.")
        mapped = EVENTS[name]
        if mapped is None:
            return Parsed([], ignored=1)
        item = {k: v for k, v in event.items() if k not in ("domain", "account")}
        item["event"] = mapped
        if name == "failed":
            severity = Severity.PERMANENT if event.get("severity") == "permanent" else Severity.TEMPORARY
            item.update(failure(severity))
        item["source"] = {"provider": self.provider.value, "event": name}
        return Parsed([item])
