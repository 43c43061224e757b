"""The Kirim.Email dialect: GUID-addressed single webhooks with the ``{"success": …}`` envelope."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.auth import kirim_account
from mailhooks.api.bodies import as_dict, read_json
from mailhooks.api.dialects.kirim import VALIDATION_FAILED
from mailhooks.api.openapi.kirim import json_body, responses
from mailhooks.api.responses import JSON
from mailhooks.api.samples import send_test
from mailhooks.api.scopes import requires
from mailhooks.api.state import Services, services
from mailhooks.core.errors import ValidationFailed, WebhookNotFound
from mailhooks.core.event_types import KIRIM_TYPES, parse_type
from mailhooks.core.models import Account, Domain, Webhook
from mailhooks.core.payloads import PayloadFormat
from mailhooks.core.scopes import Need
from mailhooks.core.targets import check_url_syntax

router = APIRouter(prefix="/api/domains/{domain}/webhooks", tags=["Kirim.Email"])

TYPE_INVALID = "The selected type is invalid."


def webhook_json(row: Webhook, account: Account, domain: Domain) -> dict[str, Any]:
    return {
        "webhook_guid": row.guid,
        "user_guid": account.guid,
        "user_domain_guid": domain.guid,
        "user_smtp_guid": None,
        "type": row.event_type,
        "url": row.url,
        "is_deleted": row.deleted_at is not None,
        "created_at": int(row.created_at),
        "modified_at": int(row.modified_at),
    }


def _validate(data: dict[str, Any], required: tuple[str, ...], allowed: tuple[str, ...],
              type_field: str) -> dict[str, Any]:
    """Laravel-style validation: every field's problems at once."""
    errors: dict[str, list[str]] = {}
    for key in data:
        if key not in allowed:
            errors.setdefault(key, []).append(f"The {key} field is not allowed.")
    for key in required:
        if data.get(key) in (None, ""):
            errors.setdefault(key, []).append(f"The {key.replace('_', ' ')} field is required.")
    if type_field in data and data[type_field] not in (None, "") and parse_type(data[type_field], KIRIM_TYPES) is None:
        errors.setdefault(type_field, []).append(f"The selected {type_field.replace('_', ' ')} is invalid.")
    if "url" in data and data["url"] not in (None, ""):
        try:
            data["url"] = check_url_syntax(data["url"])
        except ValidationFailed as exc:
            errors.setdefault("url", []).extend(exc.errors.get("url", [exc.message]))
    if errors:
        raise ValidationFailed(errors, VALIDATION_FAILED)
    return data


DomainPath = Path(..., description="Domain name that must be owned by the authenticated user")
GuidPath = Path(..., description="Webhook GUID")  # an impossible guid or domain is "not found", not a 422


def _guid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise WebhookNotFound() from exc


@router.get("", responses=responses("KirimWebhookList"))
@requires(Need.READ)
async def list_webhooks(
    domain: str = DomainPath,
    type: str | None = Query(None, description="Filter by event type"),  # noqa: A002
    account: Account = Depends(kirim_account),
    svc: Services = Depends(services),
) -> Response:
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    if type is not None and parse_type(type, KIRIM_TYPES) is None:
        raise ValidationFailed({"type": [TYPE_INVALID]}, VALIDATION_FAILED)
    rows = await subs.list_rows(account, dom, KIRIM_TYPES, type)
    data = [webhook_json(row, account, dom) for row in rows]
    return JSON({"success": True, "data": data, "count": len(data)})


@router.post("", status_code=201, responses=responses("KirimWebhookEnvelope", 201),
             openapi_extra=json_body("KirimWebhookCreate"))
@requires(Need.MANAGE)
async def create_webhook(request: Request, domain: str = DomainPath, account: Account = Depends(kirim_account),
                         svc: Services = Depends(services)) -> Response:
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    data = _validate(as_dict(await read_json(request)), ("type", "url"), ("type", "url"), "type")
    row = await subs.create_row(account, dom, data["type"], data["url"])
    return JSON({"success": True, "message": "Webhook created successfully.",
                 "data": webhook_json(row, account, dom)}, status_code=201)


@router.post("/test", responses=responses("KirimTestResult", 200, 424), openapi_extra=json_body("KirimWebhookTest"))
@requires(Need.MANAGE)
async def test_webhook(request: Request, domain: str = DomainPath, account: Account = Depends(kirim_account),
                       svc: Services = Depends(services)) -> Response:
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    data = _validate(as_dict(await read_json(request)), ("url", "event_type"), ("url", "event_type"), "event_type")
    url, result = await send_test(svc, account, dom, data["event_type"], data["url"], PayloadFormat.KIRIM)
    payload = {"url": url, "event_type": data["event_type"], "response_status": result.status_code or 0,
               "response_time": int(round(result.duration_ms))}
    if result.ok:
        return JSON({"success": True, "message": "Webhook test completed successfully", "data": payload})
    return JSON({"success": False, "message": "Webhook URL did not respond correctly", "data": payload},
                status_code=424)


@router.get("/{webhook_guid}", responses=responses("KirimWebhookEnvelope"))
@requires(Need.READ)
async def get_webhook(domain: str = DomainPath, webhook_guid: str = GuidPath,
                      account: Account = Depends(kirim_account), svc: Services = Depends(services)) -> Response:
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    row = await subs.get_row(account, dom, _guid(webhook_guid))
    return JSON({"success": True, "data": webhook_json(row, account, dom)})


@router.put("/{webhook_guid}", responses=responses("KirimWebhookEnvelope"),
            openapi_extra=json_body("KirimWebhookUpdate"))
@requires(Need.MANAGE)
async def update_webhook(request: Request, domain: str = DomainPath, webhook_guid: str = GuidPath,
                         account: Account = Depends(kirim_account), svc: Services = Depends(services)) -> Response:
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    guid = _guid(webhook_guid)
    await subs.get_row(account, dom, guid)
    data = _validate(as_dict(await read_json(request, allow_empty=True)), (), ("type", "url"), "type")
    if data.get("type") in (None, "") and data.get("url") in (None, ""):
        raise ValidationFailed({"type": ["The type field is required when url is not present."],
                                "url": ["The url field is required when type is not present."]}, VALIDATION_FAILED)
    row = await subs.update_row(account, dom, guid, data.get("type") or None, data.get("url") or None)
    return JSON({"success": True, "message": "Webhook updated successfully.", "data": webhook_json(row, account, dom)})


@router.delete("/{webhook_guid}", responses=responses("KirimMessage"))
@requires(Need.MANAGE)
async def delete_webhook(domain: str = DomainPath, webhook_guid: str = GuidPath,
                         account: Account = Depends(kirim_account), svc: Services = Depends(services)) -> Response:
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    await subs.delete_row(account, dom, _guid(webhook_guid))
    return JSON({"success": True, "message": "Webhook deleted successfully."})
