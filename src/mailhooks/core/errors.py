"""Errors the core raises; each edge turns them into its dialect's exact response."""

from __future__ import annotations


class CoreError(Exception):
    """Base class for expected, user-facing failures."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class Conflict(CoreError):
    """The request collides with existing state (duplicate type, URL already subscribed)."""


class ValidationFailed(CoreError):
    """Bad input. ``errors`` maps a field name to human-readable messages (Laravel style)."""

    def __init__(self, errors: dict[str, list[str]], message: str | None = None) -> None:
        first = next(iter(errors.values()))[0] if errors else "Invalid input"
        super().__init__(message or first)
        self.errors = errors

    @classmethod
    def field(cls, name: str, message: str) -> ValidationFailed:
        return cls({name: [message]})


class LimitExceeded(ValidationFailed):
    """More URLs for one event type than allowed."""
