"""HMAC-signed values for cookies and CSRF tokens: pure functions of the secret (``deps.session_secret``).

Each use names its purpose, which is signed with the data, so that a value signed for one purpose (a flash
message) is never accepted for another (a session).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

MAX_TOKEN = 4096


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mac(secret: bytes, purpose: str, data: bytes) -> str:
    return _b64(hmac.new(secret, purpose.encode() + b"\x00" + data, hashlib.sha256).digest())


def seal(secret: bytes, purpose: str, value: dict[str, Any]) -> str:
    """``value`` as JSON, readable but signed: ``base64(json).mac``."""
    data = orjson.dumps(value)
    return f"{_b64(data)}.{mac(secret, purpose, data)}"


def unseal(secret: bytes, purpose: str, token: str | None) -> dict[str, Any] | None:
    """The dict that ``seal`` signed for ``purpose``; ``None`` for anything else (absent, forged, mangled)."""
    if not token or "." not in token or len(token) > MAX_TOKEN:
        return None
    body, _, signature = token.partition(".")
    try:
        data = _unb64(body)
    except ValueError:
        return None
    if not hmac.compare_digest(signature, mac(secret, purpose, data)):
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
