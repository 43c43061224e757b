"""OpenAPI declarations of the Kirim.Email dialect: its schemas and the objects its routes cite."""

from __future__ import annotations

from typing import Any

from mailhooks.core.event_types import KIRIM_TYPES


def _ref(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def responses(ok_schema: str, ok_code: int = 200, *extra: int) -> dict[int | str, dict[str, Any]]:
    """A route's responses: ``ok_schema`` on ``ok_code``, the Kirim error envelope on the usual failures, and
    the test result on ``extra`` (the test endpoint's 424)."""
    out: dict[int | str, dict[str, Any]] = {
        ok_code: {"description": "OK", **_ref(ok_schema)},
        401: {"description": "Unauthorized", **_ref("KirimError")},
        403: {"description": "The API key's scope or domain does not allow this", **_ref("KirimError")},
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
SCHEMAS: dict[str, Any] = {
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


def json_body(name: str) -> dict[str, Any]:
    """``openapi_extra`` for a route whose required JSON body is ``#/components/schemas/{name}``."""
    return {"requestBody": {"required": True, **_ref(name)}}
