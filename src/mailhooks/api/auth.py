"""Authentication and rate limiting, one dependency per dialect.

Mailgun: Basic ``api:KEY``. Kirim.Email: Basic ``USERNAME:KEY`` (the account's own username).
Native: Basic ``api:KEY`` or ``Bearer KEY``.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import Depends
from starlette.requests import Request

from mailhooks.api.state import Services, services
from mailhooks.core.accounts import authenticate
from mailhooks.core.models import Account


class Unauthorized(Exception):
    pass


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


async def _account(request: Request, svc: Services, dialect: str) -> Account:
    creds = credentials(request)
    if creds is None:
        raise Unauthorized()
    username, key = creds
    if dialect == "mailgun" and username != "api":
        raise Unauthorized()
    if dialect == "native" and username not in (None, "api"):
        raise Unauthorized()
    if dialect == "kirim" and username is None:
        raise Unauthorized()
    account = await authenticate(svc.store, key)
    if account is None or (dialect == "kirim" and username != account.username):
        raise Unauthorized()
    verdict = await svc.limiter.hit(account.guid)
    if not verdict.allowed:
        raise RateLimited(verdict.retry_after, verdict.limit, verdict.remaining)
    request.state.account = account
    return account


async def mailgun_account(request: Request, svc: Services = Depends(services)) -> Account:
    return await _account(request, svc, "mailgun")


async def kirim_account(request: Request, svc: Services = Depends(services)) -> Account:
    return await _account(request, svc, "kirim")


async def native_account(request: Request, svc: Services = Depends(services)) -> Account:
    return await _account(request, svc, "native")
