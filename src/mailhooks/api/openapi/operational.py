"""OpenAPI declarations of the operational webhooks and the email alerts (``api/operational.py``)."""

from __future__ import annotations

from typing import Any

from mailhooks.api.openapi.common import openapi_json
from mailhooks.api.openapi.native import ERRORS
from mailhooks.core.operational import OperationalKind

_KINDS = {"type": "array", "minItems": 1, "uniqueItems": True,
          "items": {"type": "string", "enum": [k.value for k in OperationalKind]}}
_WEBHOOK_PROPS: dict[str, Any] = {
    "guid": {"type": "string"},
    "url": {"type": "string"},
    "event_types": _KINDS,
    "created_at": {"type": "number"},
    "disabled_reason": {"type": ["string", "null"],
                        "description": "set when the receiver answered 410 or failed for days"},
}
SCHEMAS: dict[str, Any] = {
    "OperationalWebhookIn": {
        "type": "object", "additionalProperties": False, "required": ["url", "event_types"],
        "properties": {"url": {"type": "string", "maxLength": 2048}, "event_types": _KINDS},
    },
    "OperationalWebhook": {"type": "object", "properties": _WEBHOOK_PROPS, "required": list(_WEBHOOK_PROPS)},
    "OperationalWebhookList": {
        "type": "object", "required": ["items"],
        "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/OperationalWebhook"}}},
    },
    "Alerts": {"type": "object", "required": ["email"],
               "properties": {"email": {"anyOf": [{"type": "string", "maxLength": 254}, {"type": "null"}],
                                        "description": "where operational events are mailed; null: nowhere"}}},
}


def body(schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


TOO_LARGE: dict[int | str, dict[str, Any]] = {413: openapi_json("NativeError", "Body too large")}
CREATED: dict[int | str, dict[str, Any]] = {201: openapi_json("OperationalWebhook", "Created"), **ERRORS, **TOO_LARGE}
LISTED: dict[int | str, dict[str, Any]] = {200: openapi_json("OperationalWebhookList"), **ERRORS}
DELETED: dict[int | str, dict[str, Any]] = {204: {"description": "Deleted"}, **ERRORS}
ALERTS: dict[int | str, dict[str, Any]] = {200: openapi_json("Alerts"), **ERRORS}
ALERTS_SET: dict[int | str, dict[str, Any]] = {**ALERTS, **TOO_LARGE}
