"""The Kirim.Email dialect: GUID-addressed single webhooks with the ``{"success": …}`` envelope."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.auth import kirim_account
from mailhooks.api.bodies import as_dict, read_json
from mailhooks.api.responses import JSON
from mailhooks.api.state import Services, services
from mailhooks.core.errors import ValidationFailed, WebhookNotFound
from mailhooks.core.event_types import KIRIM_TYPES, is_kirim_type
from mailhooks.core.models import Account, Domain, Webhook
from mailhooks.core.targets import check_url_syntax
from mailhooks.sending import send_sample

router = APIRouter(prefix="/api/domains/{domain}/webhooks", tags=["Kirim.Email"])

TYPE_INVALID = "The selected type is invalid."


def _ref(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def _responses(ok_schema: str, ok_code: int = 200, *extra: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {
        ok_code: {"description": "OK", **_ref(ok_schema)},
        401: {"description": "Unauthorized", **_ref("KirimError")},
        404: {"description": "Domain or webhook not found", **_ref("KirimError")},
        405: {"description": "Method not allowed", **_ref("KirimError")},
        413: {"description": "Body too large", **_ref("KirimError")},
        422: {"description": "Validation failed", **_ref("KirimError")},
        429: {"description": "Too many attempts", **_ref("KirimError")},
    }
    for code in extra:
        out[code] = {"description": "Webhook URL did not respond correctly", **_ref("KirimTestResult")}
    return out


_TYPE_ENUM = {"type": "string", "enum": list(KIRIM_TYPES)}
OPENAPI_SCHEMAS: dict[str, Any] = {
    "KirimWebhook": {
        "type": "object",
        "properties": {
            "webhook_guid": {"type": "string", "format": "uuid"},
            "user_guid": {"type": "string"},
            "user_domain_guid": {"type": "string"},
            "user_smtp_guid": {"type": "string", "nullable": True},
            "type": _TYPE_ENUM,
            "url": {"type": "string"},
            "is_deleted": {"type": "boolean"},
            "created_at": {"type": "integer"},
            "modified_at": {"type": "integer"},
        },
        "required": ["webhook_guid", "user_guid", "user_domain_guid", "user_smtp_guid", "type", "url", "is_deleted",
                     "created_at", "modified_at"],
    },
    "KirimWebhookList": {
        "type": "object",
        "properties": {"success": {"type": "boolean"},
                       "data": {"type": "array", "items": {"$ref": "#/components/schemas/KirimWebhook"}},
                       "count": {"type": "integer"}},
        "required": ["success", "data", "count"],
    },
    "KirimWebhookEnvelope": {
        "type": "object",
        "properties": {"success": {"type": "boolean"}, "message": {"type": "string"},
                       "data": {"$ref": "#/components/schemas/KirimWebhook"}},
        "required": ["success", "data"],
    },
    "KirimMessage": {"type": "object", "properties": {"success": {"type": "boolean"}, "message": {"type": "string"}},
                     "required": ["success", "message"]},
    "KirimError": {
        "type": "object",
        "properties": {"success": {"type": "boolean"}, "message": {"type": "string"},
                       "errors": {"type": "object",
                                  "additionalProperties": {"type": "array", "items": {"type": "string"}}}},
        "required": ["success", "message"],
    },
    "KirimTestResult": {
        "type": "object",
        "properties": {
            "success": {"type": "boolean"}, "message": {"type": "string"},
            "data": {"type": "object", "properties": {
                "url": {"type": "string"}, "event_type": {"type": "string"},
                "response_status": {"type": "integer"}, "response_time": {"type": "integer"}},
                "required": ["url", "event_type", "response_status", "response_time"]},
        },
        "required": ["success", "message", "data"],
    },
    "KirimWebhookCreate": {
        "type": "object",
        "properties": {"type": _TYPE_ENUM, "url": {"type": "string", "format": "uri"}},
        "required": ["type", "url"],
        "additionalProperties": False,
    },
    "KirimWebhookUpdate": {
        "type": "object",
        "properties": {"type": _TYPE_ENUM, "url": {"type": "string", "format": "uri"}},
        "additionalProperties": False,
    },
    "KirimWebhookTest": {
        "type": "object",
        "properties": {"url": {"type": "string", "format": "uri"}, "event_type": _TYPE_ENUM},
        "required": ["url", "event_type"],
        "additionalProperties": False,
    },
}


def _body(name: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, **_ref(name)}}


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
    if type_field in data and data[type_field] not in (None, "") and not is_kirim_type(data[type_field]):
        errors.setdefault(type_field, []).append(f"The selected {type_field.replace('_', ' ')} is invalid.")
    if "url" in data and data["url"] not in (None, ""):
        try:
            data["url"] = check_url_syntax(data["url"])
        except ValidationFailed as exc:
            errors.setdefault("url", []).extend(exc.errors.get("url", [exc.message]))
    if errors:
        raise ValidationFailed(errors, "Validation failed.")
    return data


DomainPath = Path(..., description="Domain name that must be owned by the authenticated user")
GuidPath = Path(..., description="Webhook GUID")  # an impossible guid or domain is "not found", not a 422


def _guid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise WebhookNotFound() from exc


@router.get("", responses=_responses("KirimWebhookList"))
async def list_webhooks(
    domain: str = DomainPath,
    type: str | None = Query(None, description="Filter by event type"),  # noqa: A002
    account: Account = Depends(kirim_account),
    svc: Services = Depends(services),
) -> Response:
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    if type is not None and not is_kirim_type(type):
        raise ValidationFailed({"type": [TYPE_INVALID]}, "Validation failed.")
    rows = await subs.list_rows(account, dom, KIRIM_TYPES, type)
    data = [webhook_json(row, account, dom) for row in rows]
    return JSON({"success": True, "data": data, "count": len(data)})


@router.post("", status_code=201, responses=_responses("KirimWebhookEnvelope", 201),
             openapi_extra=_body("KirimWebhookCreate"))
async def create_webhook(request: Request, domain: str = DomainPath, account: Account = Depends(kirim_account),
                         svc: Services = Depends(services)) -> Response:
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    data = _validate(as_dict(await read_json(request)), ("type", "url"), ("type", "url"), "type")
    row = await subs.create_row(account, dom, data["type"], data["url"])
    return JSON({"success": True, "message": "Webhook created successfully.",
                 "data": webhook_json(row, account, dom)}, status_code=201)


@router.post("/test", responses=_responses("KirimTestResult", 200, 424), openapi_extra=_body("KirimWebhookTest"))
async def test_webhook(request: Request, domain: str = DomainPath, account: Account = Depends(kirim_account),
                       svc: Services = Depends(services)) -> Response:
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    data = _validate(as_dict(await read_json(request)), ("url", "event_type"), ("url", "event_type"), "event_type")
    (url,) = await subs.check_urls([data["url"]])
    result = await send_sample(svc.require_sender(), account, dom, data["event_type"], url, "kirim")
    payload = {"url": url, "event_type": data["event_type"], "response_status": result.status_code or 0,
               "response_time": int(round(result.duration_ms))}
    if result.ok:
        return JSON({"success": True, "message": "Webhook test completed successfully", "data": payload})
    return JSON({"success": False, "message": "Webhook URL did not respond correctly", "data": payload},
                status_code=424)


@router.get("/{webhook_guid}", responses=_responses("KirimWebhookEnvelope"))
async def get_webhook(domain: str = DomainPath, webhook_guid: str = GuidPath,
                      account: Account = Depends(kirim_account), svc: Services = Depends(services)) -> Response:
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    row = await subs.get_row(account, dom, _guid(webhook_guid))
    return JSON({"success": True, "data": webhook_json(row, account, dom)})


@router.put("/{webhook_guid}", responses=_responses("KirimWebhookEnvelope"), openapi_extra=_body("KirimWebhookUpdate"))
async def update_webhook(request: Request, domain: str = DomainPath, webhook_guid: str = GuidPath,
                         account: Account = Depends(kirim_account), svc: Services = Depends(services)) -> Response:
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    guid = _guid(webhook_guid)
    await subs.get_row(account, dom, guid)
    data = _validate(as_dict(await read_json(request, allow_empty=True)), (), ("type", "url"), "type")
    if data.get("type") in (None, "") and data.get("url") in (None, ""):
        raise ValidationFailed({"type": ["The type field is required when url is not present."],
                                "url": ["The url field is required when type is not present."]}, "Validation failed.")
    row = await subs.update_row(account, dom, guid, data.get("type") or None, data.get("url") or None)
    return JSON({"success": True, "message": "Webhook updated successfully.", "data": webhook_json(row, account, dom)})


@router.delete("/{webhook_guid}", responses=_responses("KirimMessage"))
async def delete_webhook(domain: str = DomainPath, webhook_guid: str = GuidPath,
                         account: Account = Depends(kirim_account), svc: Services = Depends(services)) -> Response:
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    await subs.delete_row(account, dom, _guid(webhook_guid))
    return JSON({"success": True, "message": "Webhook deleted successfully."})
