"""What an API key may do: its scope, optionally one domain, and what each route needs.

A key's scope is one of four. ``admin`` (every key made before scopes existed) may do everything,
``manage`` changes webhooks and reads, ``read`` only reads, ``ingest`` only posts events. Each route
declares the one ``Need`` it has (``api/route_scopes.py``); ``allows`` decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    ADMIN = "admin"
    MANAGE = "manage"
    INGEST = "ingest"
    READ = "read"


class Need(StrEnum):
    """What a route needs of the caller."""

    PUBLIC = "public"  # no key at all (health, metrics, the docs)
    DASHBOARD = "dashboard"  # a dashboard session, opened with an admin key
    READ = "read"  # reads of configuration, events and deliveries
    MANAGE = "manage"  # changes to webhooks and deliveries (retry, recover, enable, test sends)
    INGEST = "ingest"  # POST /v1/events
    ADMIN = "admin"  # the account itself: signing key rotation, the audit log


# Which key scopes satisfy each need (PUBLIC and DASHBOARD are not decided by a key's scope).
_GRANTS: dict[Scope, frozenset[Need]] = {
    Scope.ADMIN: frozenset({Need.READ, Need.MANAGE, Need.INGEST, Need.ADMIN}),
    Scope.MANAGE: frozenset({Need.READ, Need.MANAGE}),
    Scope.READ: frozenset({Need.READ}),
    Scope.INGEST: frozenset({Need.INGEST}),
}


def allows(scope: Scope, need: Need) -> bool:
    return need is Need.PUBLIC or need in _GRANTS[scope]


def parse_scope(value: str) -> Scope | None:
    try:
        return Scope(value.strip().lower())
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What the presented key is: which one (its id and display prefix), its scope and its domain."""

    key_id: int
    prefix: str
    scope: Scope = Scope.ADMIN
    domain: str | None = None  # a domain name: the key acts on this domain only
