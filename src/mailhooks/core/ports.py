"""What the rules need from storage, declared here so that core imports no storage module.

Each port is the few methods one part of core calls; ``db.store.Store`` satisfies all of them
structurally (mypy checks it wherever a ``Store`` is passed in). The event intake's port,
``EventOutbox``, sits beside ``NewEvent`` in ``core.events``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from mailhooks.core.models import Account, Domain, NewWebhook, Webhook
from mailhooks.core.scopes import KeyGrant, Scope

# Decides a webhook change from the scope's live rows: ``(rows to add, ids to remove)``, optionally with
# ``{id: position}`` for rows that stay but move in their type's URL list; or raises.
WebhookPlan = Callable[[list[Webhook]], tuple[Sequence[NewWebhook], Sequence[int]]
                       | tuple[Sequence[NewWebhook], Sequence[int], Mapping[int, int]]]


class DomainLookup(Protocol):
    async def get_domain(self, account_id: int, name: str) -> Domain | None:
        """The domain called ``name`` if this account owns it, else ``None``."""
        ...


class AccountStorage(DomainLookup, Protocol):
    """Accounts, their keys and their domains (``core.accounts``)."""

    async def create_account(self, username: str, signing_key: str) -> Account: ...

    async def add_api_key(self, account_id: int, key_hash: str, prefix: str, scope: Scope = Scope.ADMIN,
                          domain: str | None = None) -> object: ...

    async def find_grant(self, key_hash: str) -> tuple[Account, str, KeyGrant] | None:
        """The account owning an unrevoked key with this hash, the stored hash, and what the key may do."""
        ...

    async def add_domain(self, account_id: int, name: str, secret: str) -> Domain: ...

    async def rotate_signing_key(self, account_id: int, signing_key: str, previous_until: float | None) -> None:
        """Make ``signing_key`` the account's key and its current one the previous key, valid until
        ``previous_until`` (``None``: the current key stops at once). One statement: two rotations at once
        each demote the key they replaced."""
        ...


class WebhookStorage(DomainLookup, Protocol):
    """Subscriptions (``core.webhooks``): reads, and changes decided by a plan inside one transaction."""

    async def list_webhooks(self, account_id: int, domain_id: int | None, event_type: str | None = None,
                            *, group_id: str | None = None) -> list[Webhook]: ...

    async def get_webhook(self, account_id: int, guid: str, domain_id: int | None = None) -> Webhook | None: ...

    async def get_webhook_by_id(self, webhook_id: int) -> Webhook | None: ...

    async def plan_webhooks(self, account_id: int, domain_id: int | None, plan: WebhookPlan,
                            set_values: tuple[int, dict[str, Any]] | None = None) -> list[Webhook]:
        """Run ``plan`` on the scope's live rows and apply its change atomically; the rows added."""
        ...

    async def change_webhooks(self, add: Sequence[NewWebhook] = (), remove_ids: Sequence[int] = ()
                              ) -> list[Webhook]: ...
