"""OpenAPI declarations of ``GET /v1/audit`` (the account's audit log)."""

from __future__ import annotations

from typing import Any

from mailhooks.api.openapi.common import openapi_json
from mailhooks.core.audit import AuditAction

SCHEMAS: dict[str, Any] = {
    "AuditEntry": {
        "type": "object",
        "properties": {
            "at": {"type": "number", "description": "epoch seconds"},
            "actor": {"type": "string",
                      "description": "the acting API key's prefix, dashboard:<username>, or cli"},
            "action": {"type": "string", "enum": [action.value for action in AuditAction]},
            "target": {"type": "string", "description": "what was changed (a webhook's guid, type and URL; a key's "
                                                        "prefix and scope; …)"},
        },
        "required": ["at", "actor", "action", "target"],
    },
    "AuditPage": {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
                       "next_cursor": {"type": ["string", "null"]}},
        "required": ["items", "next_cursor"],
    },
}

AUDIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: openapi_json("AuditPage"),
    401: openapi_json("NativeError", "Unauthorized"),
    403: openapi_json("NativeError", "The key's scope is not admin"),
    422: openapi_json("NativeError", "Invalid limit or cursor"),
    429: openapi_json("NativeError", "Too many requests"),
}
