"""The native API: health, the signing key, and (see the delivery modules) events and deliveries."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from mailhooks.api.auth import native_account
from mailhooks.api.responses import JSON, openapi_json
from mailhooks.api.state import Services, services
from mailhooks.core.accounts import whsec
from mailhooks.core.models import Account

router = APIRouter(tags=["native"])

OPENAPI_SCHEMAS: dict[str, Any] = {
    "SigningKey": {
        "type": "object",
        "properties": {"http_signing_key": {"type": "string"}, "whsec": {"type": "string"}},
        "required": ["http_signing_key", "whsec"],
    },
    "Health": {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]},
    "NativeError": {"type": "object", "properties": {"message": {"type": "string"}, "errors": {"type": "object"}},
                    "required": ["message"]},
}


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: openapi_json("NativeError", "Unauthorized"),
                                               429: openapi_json("NativeError", "Too many requests")}


@router.get("/healthz", responses={200: openapi_json("Health"), 503: openapi_json("Health", "Unhealthy")})
async def healthz(svc: Services = Depends(services)) -> Response:
    checks: dict[str, Any] = {}
    healthy = True
    try:
        await svc.store.count_accounts()
        checks["database"] = "ok"
    except Exception as exc:  # report, don't crash: this endpoint exists to say what is broken
        checks["database"] = f"error: {type(exc).__name__}"
        healthy = False
    dispatcher = svc.extras.get("dispatcher")
    if dispatcher is not None:
        problem = dispatcher.health_problem()
        checks["dispatcher"] = problem or "ok"
        healthy = healthy and problem is None
    return JSON({"status": "ok" if healthy else "unhealthy", **checks}, status_code=200 if healthy else 503)


@router.get("/v1/signing-key", responses={200: openapi_json("SigningKey"), **AUTH_ERRORS})
async def signing_key(account: Account = Depends(native_account)) -> Response:
    return JSON({"http_signing_key": account.signing_key, "whsec": whsec(account.signing_key)})
