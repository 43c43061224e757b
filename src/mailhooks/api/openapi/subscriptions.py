"""OpenAPI declarations of the native subscriptions API (``api/subscriptions.py``)."""

from __future__ import annotations

from typing import Any

from mailhooks.api.openapi.native import ERRORS, NULLABLE_INT, NULLABLE_STRING
from mailhooks.core.payloads import PayloadFormat
from mailhooks.core.subscriptions import (
    MAX_FILTER_ITEMS,
    MAX_FILTER_TEXT,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MAX_RATE_PER_SECOND,
    MAX_SCHEDULE_DELAY,
    MAX_SCHEDULE_LENGTH,
    MAX_TIMEOUT_SECONDS,
    MAX_USER_VARIABLES,
    Ordering,
)

NATIVE_ERRORS = ERRORS


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_TEXT_LIST = {"type": "array", "maxItems": MAX_FILTER_ITEMS,
              "items": {"type": "string", "minLength": 1, "maxLength": MAX_FILTER_TEXT}}
_FILTERS: dict[str, Any] = {
    "type": "object",
    "description": "an event reaches the subscription only if it matches every filter that is set",
    "properties": {
        "tags": {**_TEXT_LIST, "description": "any of these tags"},
        "recipient_domains": {**_TEXT_LIST, "description": "the recipient's domain is any of these"},
        "user_variables": {"type": "object", "maxProperties": MAX_USER_VARIABLES,
                           "additionalProperties": {"type": "string", "maxLength": MAX_FILTER_TEXT},
                           "description": "every one equals the event's user variable (compared as text)"},
        "suppressed": {"type": ["boolean", "null"],
                       "description": "true: only events for recipients on the domain's suppression lists; "
                                      "false: only the others"},
    },
    "additionalProperties": False,
}
_SETTINGS: dict[str, Any] = {
    "headers": {"type": "object", "maxProperties": MAX_HEADERS,
                "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE},
                "description": "static headers added to every attempt; sensitive values read back masked"},
    "filters": _FILTERS,
    "rate_limit_per_second": {**NULLABLE_INT, "minimum": 1, "maximum": MAX_RATE_PER_SECOND},
    "timeout_seconds": {**NULLABLE_INT, "minimum": 1, "maximum": MAX_TIMEOUT_SECONDS},
    "retry_schedule": {"type": ["array", "null"], "minItems": 1, "maxItems": MAX_SCHEDULE_LENGTH,
                       "items": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SCHEDULE_DELAY},
                       "description": "seconds between attempts (null: the installation's schedule)"},
    "ordering": {"type": "string", "enum": [o.value for o in Ordering]},
}
_SUBSCRIPTION_PROPS: dict[str, Any] = {
    "guid": {"type": "string"},
    "domain": {**NULLABLE_STRING, "description": "null for an account-level subscription"},
    "event_type": {"type": "string"},
    "url": {"type": "string", "description": "a password in the URL reads back masked"},
    "payload_format": {"type": "string", "enum": [f.value for f in PayloadFormat]},
    "state": {"type": "string", "enum": ["enabled", "disabled"]},
    "disabled_reason": NULLABLE_STRING,
    "description": NULLABLE_STRING,
    "created_at": {"type": "number"},
    "modified_at": {"type": "number"},
    **_SETTINGS,
}
SCHEMAS: dict[str, Any] = {
    "Subscription": {"type": "object", "properties": _SUBSCRIPTION_PROPS, "required": list(_SUBSCRIPTION_PROPS)},
    "SubscriptionList": {"type": "object",
                         "properties": {"items": {"type": "array",
                                                  "items": {"$ref": "#/components/schemas/Subscription"}},
                                        "next_cursor": NULLABLE_STRING},
                         "required": ["items", "next_cursor"]},
    "SubscriptionSettingsPatch": {
        "type": "object", "additionalProperties": False,
        "description": "a key present replaces that setting, null resets it, a key absent is kept",
        "properties": {
            "headers": _nullable({**_SETTINGS["headers"]}),
            "filters": _nullable(_FILTERS),
            "rate_limit_per_second": _nullable({"type": "integer", "minimum": 1, "maximum": MAX_RATE_PER_SECOND}),
            "timeout_seconds": _nullable({"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_SECONDS}),
            "retry_schedule": _nullable({**_SETTINGS["retry_schedule"], "type": "array"}),
            "ordering": _nullable(_SETTINGS["ordering"]),
        },
    },
}

PATCH_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/SubscriptionSettingsPatch"}}}}}
