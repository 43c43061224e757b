"""OpenAPI declarations of the native API: its schemas and the objects its routes cite."""

from __future__ import annotations

from typing import Any

from mailhooks.api.openapi.common import openapi_json
from mailhooks.core.deliveries import DeliveryStatus
from mailhooks.core.event_types import CANONICAL, MAILGUN_ALIASES
from mailhooks.core.events import ID_PATTERN, MAX_ID_LENGTH, MAX_STRING, MAX_TIMESTAMP
from mailhooks.core.payloads import PayloadFormat

SCHEMAS: dict[str, Any] = {
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
                                               403: openapi_json("NativeError", "Beyond the API key's scope"),
                                               429: openapi_json("NativeError", "Too many requests")}

NULLABLE_INT = {"type": ["integer", "null"]}
NULLABLE_NUMBER = {"type": ["number", "null"]}
NULLABLE_STRING = {"type": ["string", "null"]}
_DELIVERY_PROPS: dict[str, Any] = {
    "id": {"type": "integer"},
    "message_id": {"type": "string", "pattern": "^msg_[a-z2-7]{26}$",
                   "description": "the webhook-id header of every attempt, retry and replay"},
    "event_id": {"type": "string"},
    "event": {"type": "string"},
    "domain": {"type": "string"},
    "webhook": {"type": "string", "description": "guid of the subscription (webhook row)"},
    "url": {"type": "string"},
    "payload_format": {"type": "string", "enum": [f.value for f in PayloadFormat]},
    "status": {"type": "string", "enum": list(tuple(DeliveryStatus))},
    "attempt_count": {"type": "integer"},
    "next_attempt_at": {**NULLABLE_NUMBER, "description": "epoch seconds; for a delivery in flight, its lease expiry"},
    "last_status_code": NULLABLE_INT,
    "last_error": NULLABLE_STRING,
    "created_at": {"type": "number"},
    "updated_at": {"type": "number"},
}
_ATTEMPT = {
    "type": "object",
    "properties": {"number": {"type": "integer"}, "started_at": {"type": "number"}, "duration_ms": {"type": "number"},
                   "status_code": NULLABLE_INT, "response_excerpt": NULLABLE_STRING, "error": NULLABLE_STRING},
    "required": ["number", "started_at", "duration_ms", "status_code", "response_excerpt", "error"],
}
_EVENT_ITEM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": ID_PATTERN,
               "description": "idempotency key, unique per domain; generated when absent"},
        "domain": {"type": "string", "maxLength": 253, "pattern": r"\S"},
        "event": {"type": "string", "enum": [*CANONICAL, *MAILGUN_ALIASES]},
        "recipient": {"type": "string", "maxLength": MAX_STRING, "pattern": r"\S"},
        "timestamp": {"type": "number", "minimum": 0, "maximum": MAX_TIMESTAMP},
        "severity": {"type": "string"}, "reason": {"type": "string"},
        "message": {"type": "object", "properties": {"headers": {"type": "object"}}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "user-variables": {"type": "object"}, "delivery-status": {"type": "object"}, "url": {"type": "string"},
        "ip": {"type": "string"}, "geolocation": {"type": "object"}, "client-info": {"type": "object"},
        "envelope": {"type": "object"},
    },
    "required": ["domain", "event", "recipient"],
}
SCHEMAS.update({
    "EventIn": _EVENT_ITEM,
    "EventIds": {"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "string"}}},
                 "required": ["ids"]},
    "Event": {
        "type": "object",
        "properties": {"id": {"type": "string"}, "domain": {"type": "string"}, "event": {"type": "string"},
                       "occurred_at": {"type": "number"}, "received_at": {"type": "number"},
                       "data": {"type": "object"}},
        "required": ["id", "domain", "event", "occurred_at", "received_at", "data"],
    },
    "EventList": {"type": "object", "properties": {"items": {"type": "array",
                                                              "items": {"$ref": "#/components/schemas/Event"}},
                                                    "next_cursor": NULLABLE_STRING},
                  "required": ["items", "next_cursor"]},
    "Delivery": {"type": "object", "properties": _DELIVERY_PROPS, "required": list(_DELIVERY_PROPS)},
    "DeliveryDetail": {"type": "object",
                       "properties": {**_DELIVERY_PROPS, "attempts": {"type": "array", "items": _ATTEMPT}},
                       "required": [*_DELIVERY_PROPS, "attempts"]},
    "DeliveryList": {"type": "object", "properties": {"items": {"type": "array",
                                                                 "items": {"$ref": "#/components/schemas/Delivery"}},
                                                       "next_cursor": NULLABLE_STRING},
                     "required": ["items", "next_cursor"]},
    "Recovered": {"type": "object", "properties": {"requeued": {"type": "integer"}}, "required": ["requeued"]},
    "SubscriptionEnabled": {"type": "object",
                            "properties": {"guid": {"type": "string"}, "enabled": {"type": "boolean"}},
                            "required": ["guid", "enabled"]},
})

ERRORS = {**AUTH_ERRORS, 404: openapi_json("NativeError", "Not found"),
          422: openapi_json("NativeError", "Invalid input")}

# ``POST /v1/events``: one event or a batch (the limit of 1000 is the intake's).
INGEST_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "oneOf": [{"$ref": "#/components/schemas/EventIn"},
              {"type": "array", "minItems": 1, "maxItems": 1000,
               "items": {"$ref": "#/components/schemas/EventIn"}}]}}}}}
METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}
