"""Accounts, API keys and domains.

API keys are shown once and stored as a SHA-256 hash; a presented key is hashed, looked up, and
compared against the stored hash in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from mailhooks.core.errors import DomainNotFound, ValidationFailed
from mailhooks.core.models import Account, Domain
from mailhooks.core.ports import AccountStorage, DomainLookup
from mailhooks.core.scopes import KeyGrant, Scope

KEY_PREFIX_LENGTH = 12
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_api_key() -> str:
    return "mh_" + secrets.token_urlsafe(30)


def new_signing_key() -> str:
    """Mailgun's HTTP signing key format: ``key-`` + 32 hex characters (16 random bytes)."""
    return "key-" + secrets.token_hex(16)


def whsec(signing_key: str) -> str:
    """The same signing key as a Standard Webhooks secret: the HMAC key bytes are the key string itself."""
    return "whsec_" + base64.b64encode(signing_key.encode()).decode()


def new_domain_secret() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True)
class CreatedAccount:
    account: Account
    api_key: str


async def create_account(store: AccountStorage, username: str) -> CreatedAccount:
    if not USERNAME_RE.match(username):
        raise ValidationFailed.field("username", "Usernames are 1-64 letters, digits, '_', '.', '@' or '-'.")
    account = await store.create_account(username, new_signing_key())
    key = await create_api_key(store, account)
    return CreatedAccount(account=account, api_key=key)


async def create_api_key(store: AccountStorage, account: Account, scope: Scope = Scope.ADMIN,
                         domain: str | None = None) -> str:
    """A new key for ``account`` (shown once): ``scope`` limits what it may do, ``domain`` (one of the
    account's domains) where."""
    domain_name = (await find_domain(store, account, domain)).name if domain is not None else None
    key = new_api_key()
    await store.add_api_key(account.id, hash_key(key), key[:KEY_PREFIX_LENGTH], scope, domain_name)
    return key


async def authenticate_key(store: AccountStorage, presented: str) -> tuple[Account, KeyGrant] | None:
    """The account whose live key is ``presented`` and what that key may do, or ``None``."""
    if not presented or len(presented) > 512:
        return None
    digest = hash_key(presented)
    found = await store.find_grant(digest)
    if found is None:
        return None
    account, stored, grant = found
    return (account, grant) if hmac.compare_digest(stored, digest) else None


async def authenticate(store: AccountStorage, presented: str) -> Account | None:
    """The account whose live key is ``presented``, or ``None``."""
    found = await authenticate_key(store, presented)
    return None if found is None else found[0]


def normalize_domain(name: str) -> str:
    clean = name.strip().rstrip(".").lower()
    if not DOMAIN_RE.match(clean):
        raise ValidationFailed.field("domain", f"{name!r} is not a valid domain name.")
    return clean


async def find_domain(store: DomainLookup, account: Account, name: str) -> Domain:
    """The account's domain called ``name``. Another account's domain is not found, and neither is a name
    that cannot be a domain at all (NUL, which PostgreSQL refuses in text, never reaches the database)."""
    try:
        clean = normalize_domain(name)
    except ValidationFailed:
        raise DomainNotFound() from None
    found = await store.get_domain(account.id, clean)
    if found is None:
        raise DomainNotFound()
    return found


async def add_domain(store: AccountStorage, account: Account, name: str) -> Domain:
    return await store.add_domain(account.id, normalize_domain(name), new_domain_secret())


@dataclass(frozen=True)
class RotatedKey:
    signing_key: str
    previous_valid_until: float | None  # None: no overlap, the previous key stopped signing at once


async def rotate_signing_key(store: AccountStorage, account: Account, overlap: float,
                             now: float | None = None) -> RotatedKey:
    """A new signing key for ``account``. The one it replaces keeps signing beside it for ``overlap``
    seconds (``MAILHOOKS_SIGNING_KEY_OVERLAP``), so that receivers can switch keys without losing a
    delivery. At most two keys sign: a rotation during an overlap drops the oldest key at once.
    Expiry needs no job: the worker compares ``previous_key_until`` with the time of each send."""
    key = new_signing_key()
    until = (time.time() if now is None else now) + overlap if overlap > 0 else None
    await store.rotate_signing_key(account.id, key, until)
    return RotatedKey(signing_key=key, previous_valid_until=until)
