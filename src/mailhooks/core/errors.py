"""Errors the core raises; each edge turns them into its dialect's exact response.

A rule the dialects word differently (the URL limit, a duplicate subscription, a delivery in flight)
raises an error with a ``kind`` and its parameters: the words live in the dialect modules
(``api/dialects/``). ``message`` is the neutral wording, for logs and for an edge without words of its own.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """The failures that the dialects put in their own words; the parameters each one carries follow."""

    TOO_MANY_URLS = "too_many_urls"  # event_type, limit
    URL_EXISTS = "url_exists"  # event_type, url: this URL already receives this type
    TYPE_EXISTS = "type_exists"  # event_type: the type already has URLs (Mailgun v3 create)
    DELIVERY_IN_FLIGHT = "delivery_in_flight"  # delivery_id: being attempted, a retry now is refused


class CoreError(Exception):
    """Base class for expected, user-facing failures. ``kind`` is set when the dialects word it themselves."""

    kind: ErrorKind | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.params: dict[str, str | int] = {}


class NotFound(CoreError):
    """The thing does not exist *for this account* (foreign rows are indistinguishable from missing)."""

    def __init__(self, message: str, what: str = "webhook") -> None:
        super().__init__(message)
        self.what = what  # "domain" | "webhook" | "delivery" | "key": which thing, for the dialect's words


class DomainNotFound(NotFound):
    def __init__(self, message: str = "Domain not found") -> None:
        super().__init__(message, what="domain")


class WebhookNotFound(NotFound):
    def __init__(self, message: str = "Webhook not found") -> None:
        super().__init__(message, what="webhook")


class DeliveryNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Delivery not found", what="delivery")


class Conflict(CoreError):
    """The request collides with existing state (duplicate type, URL already subscribed)."""


class UrlExists(Conflict):
    kind = ErrorKind.URL_EXISTS

    def __init__(self, event_type: str, url: str) -> None:
        super().__init__(f"The url {url!r} already receives event type {event_type!r}.")
        self.params = {"event_type": event_type, "url": url}


class TypeExists(Conflict):
    kind = ErrorKind.TYPE_EXISTS

    def __init__(self, event_type: str) -> None:
        super().__init__(f"Event type {event_type!r} already has urls.")
        self.params = {"event_type": event_type}


class DeliveryInFlight(Conflict):
    kind = ErrorKind.DELIVERY_IN_FLIGHT

    def __init__(self, delivery_id: int) -> None:
        super().__init__("The delivery is being attempted right now.")
        self.params = {"delivery_id": delivery_id}


class ValidationFailed(CoreError):
    """Bad input. ``errors`` maps a field name to human-readable messages (Laravel style)."""

    def __init__(self, errors: dict[str, list[str]], message: str | None = None) -> None:
        first = next(iter(errors.values()))[0] if errors else "Invalid input"
        super().__init__(message or first)
        self.errors = errors

    @classmethod
    def field(cls, name: str, message: str) -> ValidationFailed:
        return cls({name: [message]})


class TooManyUrls(ValidationFailed):
    """More URLs for one event type than allowed (``core.webhooks.check_url_limit``); a fault of ``url``."""

    kind = ErrorKind.TOO_MANY_URLS

    def __init__(self, event_type: str, limit: int) -> None:
        message = f"At most {limit} urls may receive event type {event_type!r}."
        super().__init__({"url": [message]}, message)
        self.params = {"event_type": event_type, "limit": limit}
