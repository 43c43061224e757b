"""OpenAPI declarations of the Mailgun dialect: its schemas and the request/response objects its routes cite.

Kept out of the handlers so that ``api/mailgun.py`` reads as translation only; the served document
is built from these by ``api/openapi/__init__.py``.
"""

from __future__ import annotations

from typing import Any

from mailhooks.api.openapi.common import openapi_json

FORM_BODY = {
    "content": {
        "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/MailgunWebhookForm"}},
        "multipart/form-data": {"schema": {"$ref": "#/components/schemas/MailgunWebhookForm"}},
    }
}
_ERR = openapi_json("MailgunMessage", "Error")


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A query parameter the handler reads from ``request.query_params`` (so FastAPI cannot see it)."""
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


URL_QUERY = {"parameters": [_query("url", "URL(s) to remove: repeated, or comma-separated",
                                   {"type": "array", "items": {"type": "string"}})]}
IDS_QUERY = _query("webhook_ids", "Comma-separated webhook ids")
ALL_QUERY = _query("all", "'true' deletes every account webhook (ignored when webhook_ids is given)")
_401 = {"description": "Bad or missing API key", "content": {"text/plain": {"schema": {"type": "string"}}}}
_429 = {"description": "Rate limited", "content": {"application/json": {"schema": {"type": "object"}}}}


def responses(schema: str | None, *codes: int, ok_code: int = 200) -> dict[int | str, dict[str, Any]]:
    """A route's responses: ``schema`` (or no content) on ``ok_code``, Mailgun's ``{"message"}`` on ``codes``."""
    out: dict[int | str, dict[str, Any]] = {401: _401, 403: _ERR, 429: _429, 413: _ERR, 405: _ERR}  # 403: scope
    if schema is None:
        out[ok_code] = {"description": "No content"}
    else:
        out[ok_code] = openapi_json(schema)
    for code in codes:
        out[code] = _ERR
    return out


SCHEMAS: dict[str, Any] = {
    "MailgunMessage": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
    "MailgunUrls": {"type": "object", "properties": {"urls": {"type": "array", "items": {"type": "string"}}},
                    "required": ["urls"]},
    "MailgunWebhookMap": {
        "type": "object",
        "properties": {"webhooks": {"type": "object",
                                    "additionalProperties": {"$ref": "#/components/schemas/MailgunUrls"}}},
        "required": ["webhooks"],
    },
    "MailgunWebhook": {"type": "object", "properties": {"webhook": {"$ref": "#/components/schemas/MailgunUrls"}},
                       "required": ["webhook"]},
    "MailgunWebhookChange": {
        "type": "object",
        "properties": {"message": {"type": "string"}, "webhook": {"$ref": "#/components/schemas/MailgunUrls"}},
        "required": ["message", "webhook"],
    },
    "MailgunWebhookForm": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "webhook name (event type)"},
            "url": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "event_types": {"type": "array", "items": {"type": "string"}},
            "description": {"type": "string"},
        },
    },
    "MailgunAccountWebhook": {
        "type": "object",
        "properties": {
            "webhook_id": {"type": "string"}, "description": {"type": "string"}, "url": {"type": "string"},
            "event_types": {"type": "array", "items": {"type": "string"}}, "created_at": {"type": "string"},
        },
        "required": ["webhook_id", "description", "url", "event_types", "created_at"],
    },
    "MailgunAccountWebhookList": {
        "type": "object",
        "properties": {"webhooks": {"type": "array", "items": {"$ref": "#/components/schemas/MailgunAccountWebhook"}}},
        "required": ["webhooks"],
    },
    "MailgunWebhookId": {"type": "object", "properties": {"webhook_id": {"type": "string"}},
                         "required": ["webhook_id"]},
    "MailgunSigningKey": {
        "type": "object",
        "properties": {"http_signing_key": {"type": "string"}, "message": {"type": "string"}},
        "required": ["http_signing_key"],
    },
    "MailgunTestResult": {"type": "object", "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
                          "required": ["code", "message"]},
}
