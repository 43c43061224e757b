"""Plain records passed between the core, storage and the edges."""

from __future__ import annotations

from dataclasses import dataclass

from mailhooks.core.subscriptions import DEFAULT_SETTINGS, SubscriptionSettings


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    guid: str
    username: str
    signing_key: str
    created_at: float
    # The key before the last rotation, still signing beside ``signing_key`` until ``previous_key_until``;
    # never shown again (see ``core.accounts.rotate_signing_key``).
    previous_signing_key: str | None = None
    previous_key_until: float | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    account_id: int
    prefix: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    scope: str = "admin"  # core.scopes.Scope
    domain: str | None = None


@dataclass(frozen=True, slots=True)
class Domain:
    id: int
    guid: str
    name: str
    account_id: int
    secret: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    guid: str
    account_id: int
    domain_id: int | None
    event_type: str
    url: str
    payload_format: str
    group_id: str | None
    description: str | None
    created_at: float
    modified_at: float
    deleted_at: float | None = None
    disabled_at: float | None = None
    disabled_reason: str | None = None
    failing_since: float | None = None
    position: int = 0  # place in its type's URL list (Mailgun v3 order); ties by id
    settings: SubscriptionSettings = DEFAULT_SETTINGS

    @property
    def active(self) -> bool:
        return self.deleted_at is None and self.disabled_at is None


@dataclass(frozen=True, slots=True)
class NewWebhook:
    """A webhook row to insert; the store fills in id, guid and times."""

    account_id: int
    domain_id: int | None
    event_type: str
    url: str
    payload_format: str
    group_id: str | None = None
    description: str | None = None
    position: int = 0
