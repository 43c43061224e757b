"""The audit log: who changed what, when.

Who is the *actor*: an API key's display prefix, ``dashboard:<username>`` or ``cli``. The edge that
knows it (the API's authentication, the dashboard's session, the CLI) says so once with ``acting_as``;
storage reads it with ``current_actor`` when it records a change, in the change's own transaction. A
change made with no actor (the delivery worker disabling a failing webhook) is not an account's doing
and is not recorded.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class AuditAction(StrEnum):
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_CHANGED = "webhook.changed"
    WEBHOOK_DELETED = "webhook.deleted"
    KEY_CREATED = "key.created"
    KEY_REVOKED = "key.revoked"
    SIGNING_KEY_ROTATED = "signing_key.rotated"
    SUBSCRIPTION_ENABLED = "subscription.enabled"
    REPLAY_STARTED = "replay.started"


CLI_ACTOR = "cli"
MAX_TARGET = 500  # characters of the target kept (a URL can be long)


def dashboard_actor(username: str) -> str:
    return f"dashboard:{username}"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str


_actor: ContextVar[str | None] = ContextVar("mailhooks_audit_actor", default=None)


def acting_as(actor: str) -> None:
    """The rest of this request (task) acts as ``actor``. Each request runs in its own task, so this
    never leaks into another request."""
    _actor.set(actor)


def current_actor() -> str | None:
    return _actor.get()


class AuditLog(Protocol):
    """Records one change of an account (``db.store.Store`` satisfies it)."""

    async def record_audit(self, account_id: int, action: AuditAction, target: str,
                           actor: str | None = None) -> None:
        """Record ``action`` on ``target`` by ``actor`` (default: ``current_actor()``; nothing is recorded
        when there is none)."""
        ...
