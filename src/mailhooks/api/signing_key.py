"""Rotating the account's signing key from the native API (``POST /v1/signing-key/rotate``).

The key it replaces keeps signing deliveries beside the new one for ``MAILHOOKS_SIGNING_KEY_OVERLAP``
(``core.accounts.rotate_signing_key``); the answer says until when, and never shows that key again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends
from starlette.responses import Response

from mailhooks.api.auth import native_account
from mailhooks.api.openapi.common import openapi_json
from mailhooks.api.openapi.native import AUTH_ERRORS
from mailhooks.api.responses import JSON
from mailhooks.api.scopes import requires
from mailhooks.api.state import Services, services
from mailhooks.core.accounts import rotate_signing_key, whsec
from mailhooks.core.models import Account
from mailhooks.core.scopes import Need

router = APIRouter(tags=["native"])


def iso_time(ts: float | None) -> str | None:
    """UTC, to the second, ``Z``-suffixed (RFC 3339)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@router.post("/v1/signing-key/rotate", responses={200: openapi_json("RotatedSigningKey"), **AUTH_ERRORS})
@requires(Need.ADMIN)
async def rotate(account: Account = Depends(native_account), svc: Services = Depends(services)) -> Response:
    """A new signing key; the previous one still signs (``webhook-signature`` only) until
    ``previous_valid_until`` (``null`` when the overlap is 0)."""
    rotated = await rotate_signing_key(svc.store, account, svc.settings.signing_key_overlap)
    return JSON({"http_signing_key": rotated.signing_key, "whsec": whsec(rotated.signing_key),
                 "previous_valid_until": iso_time(rotated.previous_valid_until)})
