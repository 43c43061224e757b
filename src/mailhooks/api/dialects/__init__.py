"""The three API dialects, and the one place that decides which of them answers a request.

The dialect is decided by the path alone, so that even framework-level failures (unknown route, wrong
method, oversized body) come back in the shape the caller's SDK understands. Each dialect is an object
(``mailgun``, ``kirim``, ``native``) that renders every error in its own shape and words.
"""

from __future__ import annotations

from mailhooks.api.dialects.base import Dialect, DialectErrors
from mailhooks.api.dialects.kirim import KirimErrors
from mailhooks.api.dialects.mailgun import MailgunErrors
from mailhooks.api.dialects.native import NativeErrors

__all__ = ["Dialect", "DialectErrors", "dialect_for", "errors_for", "errors_of"]

MAILGUN_PREFIXES = ("/v3/", "/v4/", "/v5/", "/v1/webhooks")
KIRIM_PREFIX = "/api/"

_ERRORS: dict[Dialect, DialectErrors] = {
    Dialect.MAILGUN: MailgunErrors(),
    Dialect.KIRIM: KirimErrors(),
    Dialect.NATIVE: NativeErrors(),
}


def dialect_for(path: str) -> Dialect:
    """Which dialect answers ``path``: Mailgun's and Kirim.Email's own paths, the native API for the rest."""
    if path.startswith(MAILGUN_PREFIXES):
        return Dialect.MAILGUN
    if path.startswith(KIRIM_PREFIX):
        return Dialect.KIRIM
    return Dialect.NATIVE


def errors_of(dialect: Dialect) -> DialectErrors:
    return _ERRORS[dialect]


def errors_for(path: str) -> DialectErrors:
    """The error shapes and words of the dialect that answers ``path``."""
    return _ERRORS[dialect_for(path)]
