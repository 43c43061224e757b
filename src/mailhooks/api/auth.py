"""Authentication and rate limiting, one dependency per dialect.

Mailgun: Basic ``api:KEY``. Kirim.Email: Basic ``USERNAME:KEY`` (the account's own username).
Native: Basic ``api:KEY`` or ``Bearer KEY``.

Wrong credentials are counted per client address; an address over its failure budget is refused
(429) before its key is even looked at, so that keys cannot be guessed at line rate.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import Depends
from starlette.requests import Request

from mailhooks.api.dialects import Dialect
from mailhooks.api.ratelimit import Budget
from mailhooks.api.scopes import need_of
from mailhooks.api.state import Services, services
from mailhooks.core.accounts import authenticate_key, normalize_domain
from mailhooks.core.audit import acting_as
from mailhooks.core.errors import DomainNotFound, ValidationFailed
from mailhooks.core.models import Account
from mailhooks.core.scopes import KeyGrant, Need, allows


class Unauthorized(Exception):
    pass


class Forbidden(Exception):
    """A valid key used beyond its scope or outside its domain: refused, nothing changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RateLimited(Exception):
    def __init__(self, retry_after: float, limit: int, remaining: int) -> None:
        super().__init__("rate limited")
        self.retry_after = retry_after
        self.limit = limit
        self.remaining = remaining


def credentials(request: Request) -> tuple[str | None, str] | None:
    """``(username, key)`` from Basic, ``(None, key)`` from Bearer, or ``None``."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and value:
        return None, value
    if scheme != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, key = decoded.partition(":")
    if not sep:
        return None
    return username, key


def client_address(request: Request) -> str:
    """The peer as uvicorn reports it (``X-Forwarded-For`` is honoured from ``FORWARDED_ALLOW_IPS`` only,
    127.0.0.1 by default: a reverse proxy on the same host)."""
    return request.client.host if request.client else "unknown"


async def refuse_throttled_address(request: Request, svc: Services) -> None:
    """429 for an address that used up its failed-sign-in budget; call before checking its key."""
    verdict = await svc.limiter.peek(client_address(request), Budget.AUTH_FAILURES)
    if not verdict.allowed:
        raise RateLimited(verdict.retry_after, verdict.limit, verdict.remaining)


async def count_failed_sign_in(request: Request, svc: Services) -> None:
    await svc.limiter.hit(client_address(request), Budget.AUTH_FAILURES)


def _fits_dialect(dialect: Dialect, username: str | None) -> bool:
    if dialect is Dialect.MAILGUN:
        return username == "api"
    if dialect is Dialect.NATIVE:
        return username in (None, "api")
    return username is not None  # kirim: the account's own username, checked below


async def _account(request: Request, svc: Services, dialect: Dialect,
                   budget: Budget = Budget.MANAGEMENT) -> Account:
    creds = credentials(request)
    if creds is None:
        raise Unauthorized()
    await refuse_throttled_address(request, svc)
    username, key = creds
    found = await authenticate_key(svc.store, key) if _fits_dialect(dialect, username) else None
    if found is None or (dialect is Dialect.KIRIM and username != found[0].username):
        await count_failed_sign_in(request, svc)
        raise Unauthorized()
    account, grant = found
    verdict = await svc.limiter.hit(account.guid, budget)
    if not verdict.allowed:
        raise RateLimited(verdict.retry_after, verdict.limit, verdict.remaining)
    need = need_of(request.scope.get("endpoint")) or Need.ADMIN  # undeclared: closed to narrower keys
    if not allows(grant.scope, need):
        raise Forbidden(f"This API key may not make this request (its scope is '{grant.scope}').")
    if grant.domain is not None:
        _check_domain(request, grant.domain, need)
    svc.store.note_key_use(grant.key_id)
    acting_as(grant.prefix)
    request.state.account = account
    request.state.grant = grant
    return account


def _check_domain(request: Request, allowed: str, need: Need) -> None:
    """A domain-limited key acts on its domain only. Another domain is answered exactly like one that does
    not exist (404), so the key learns nothing of the account's other domains. A route that names no
    domain (account-level webhooks, one delivery by id, the signing key) is refused (403); ingest names
    its domains in the body, and the intake checks each (``grant_of``)."""
    name = request.path_params.get("domain") or request.query_params.get("domain")
    if name is None:
        if need is Need.INGEST:
            return
        raise Forbidden(f"This API key is limited to the domain {allowed}: name it in the request.")
    try:
        clean = normalize_domain(name)
    except ValidationFailed:
        raise DomainNotFound() from None
    if clean != allowed:
        raise DomainNotFound()


def grant_of(request: Request) -> KeyGrant:
    """What the key of this (authenticated) request may do."""
    grant: KeyGrant = request.state.grant
    return grant


async def mailgun_account(request: Request, svc: Services = Depends(services)) -> Account:
    return await _account(request, svc, Dialect.MAILGUN)


async def kirim_account(request: Request, svc: Services = Depends(services)) -> Account:
    return await _account(request, svc, Dialect.KIRIM)


async def native_account(request: Request, svc: Services = Depends(services)) -> Account:
    return await _account(request, svc, Dialect.NATIVE)


async def ingest_account(request: Request, svc: Services = Depends(services)) -> Account:
    """``POST /v1/events``: native credentials, counted against the ingest budget."""
    return await _account(request, svc, Dialect.NATIVE, Budget.INGEST)
