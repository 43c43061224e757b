"""What every intake source shares: the providers, why a request is refused, the request as the adapters
see it, and the ``SourceAdapter`` protocol each provider module implements.

An adapter never touches storage. ``verify`` decides whether a request really comes from the provider
(its own authentication scheme, with the source's configuration); ``parse`` turns the body into native
ingest items (the fields of ``POST /v1/events`` without ``domain``), each with the provider's own event
id as ``id`` so that a provider's retry is idempotent. The items then go through ``core.events.Intake``
like any other event: same validation, fan-out, deliveries and limits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import orjson

# How far a signed timestamp may be from our clock (either way) before the request is refused as expired.
MAX_SKEW_SECONDS = 300.0


class Provider(StrEnum):
    MAILGUN = "mailgun"
    SENDGRID = "sendgrid"
    POSTMARK = "postmark"
    KUMOMTA = "kumomta"
    POSTAL = "postal"
    SES = "ses"


class Rejection(StrEnum):
    """Why an intake request was refused: the ``reason`` label of ``mailhooks_source_rejections_total``."""

    SIGNATURE = "signature"  # missing or wrong signature / credentials
    EXPIRED = "expired"  # signed too long ago (or in the future)
    REPLAYED = "replayed"  # a signature token already used for another body
    MALFORMED = "malformed"  # not the provider's JSON shape
    UNKNOWN_EVENT = "unknown_event"  # an event name the provider does not document
    INVALID = "invalid"  # the mapped event failed mailhooks' own validation
    CERTIFICATE = "certificate"  # the provider's signing certificate could not be fetched (try again)

    @property
    def status(self) -> int:
        """401 for anything about who sent it; 400 for what was sent; 502 when the provider's own
        certificate host failed us (the provider should retry)."""
        if self is Rejection.CERTIFICATE:
            return 502
        return 401 if self in (Rejection.SIGNATURE, Rejection.EXPIRED, Rejection.REPLAYED) else 400


class SourceRejected(Exception):
    def __init__(self, reason: Rejection, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class RequestParts:
    """One intake request: header names lower-case, the raw body bytes."""

    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a body holds: the native ingest items, and how many provider events had no mailhooks type
    (documented by the provider, acknowledged, not stored: e.g. SendGrid's ``group_resubscribe``)."""

    items: list[dict[str, Any]]
    ignored: int = 0
    confirm_url: str | None = None  # a subscription the provider asks to confirm by fetching this URL (SNS)


@dataclass(frozen=True, slots=True)
class Outside:
    """What an adapter may reach outside the request: ``fetch(url)`` GETs a URL the adapter has checked
    (an SNS signing certificate, a subscription confirmation) and returns the body."""

    fetch: Callable[[str], Awaitable[bytes]]
    sns_hosts: tuple[str, ...] = ()  # MAILHOOKS_SNS_CERT_HOSTS: loopback stand-ins for Amazon SNS (tests)


@dataclass(frozen=True, slots=True)
class Configured:
    """A new source's configuration: ``stored`` goes to the database (secrets as kept for verification),
    ``shown_once`` is answered to the creator only (generated credentials)."""

    stored: dict[str, Any]
    shown_once: dict[str, Any] = field(default_factory=dict)


class SourceAdapter(Protocol):
    provider: Provider

    def configure(self, given: Mapping[str, Any]) -> Configured:
        """Check the operator's provider settings (``ValidationFailed`` if wrong), generate what mailhooks
        makes itself (credentials)."""
        ...

    def public(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """The stored configuration as read back: never a secret."""
        ...

    def setup(self, intake_url: str, shown_once: Mapping[str, Any]) -> dict[str, Any]:
        """What the operator enters at the provider: the URL (with credentials where the scheme puts
        them there) and the settings to choose."""
        ...

    async def verify(self, parts: RequestParts, stored: Mapping[str, Any], outside: Outside,
                     now: float | None = None) -> None:
        """Raise ``SourceRejected`` unless the request is the provider's (``now``: epoch seconds, default the clock)."""
        ...

    def parse(self, body: bytes) -> Parsed:
        """Native ingest items for the body; ``SourceRejected`` (malformed / unknown event) otherwise."""
        ...


# ---------------------------------------------------------------------- helpers the adapters share
def load_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SourceRejected(Rejection.MALFORMED, "The body must be valid JSON.") from exc


def check_timestamp(value: str | int | float | None, now: float) -> None:
    try:
        stamp = float(value) if value is not None else None
    except ValueError:
        stamp = None
    if stamp is None or stamp != stamp:  # NaN compares unequal to itself
        raise SourceRejected(Rejection.SIGNATURE, "The signature timestamp is missing or not a number.")
    if abs(now - stamp) > MAX_SKEW_SECONDS:
        raise SourceRejected(Rejection.EXPIRED, "The signature timestamp is too far from now.")


def epoch(value: object) -> float | None:
    """A provider's time as epoch seconds: a number, or an ISO 8601 string (``Z`` or an offset)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def digest_id(prefix: str, value: object) -> str:
    """A stable event id for a provider that sends none: the same event (a retry) gives the same id."""
    canonical = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return f"{prefix}-{hashlib.sha256(canonical).hexdigest()[:40]}"


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(given: str, stored_hash: str) -> bool:
    return hmac.compare_digest(secret_hash(given), stored_hash)


def text(value: object) -> str | None:
    """A provider field as a string (numbers too), or ``None``."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None
