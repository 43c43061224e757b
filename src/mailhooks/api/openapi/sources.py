"""OpenAPI declarations of the intake sources (``/v1/sources``)."""

from __future__ import annotations

from typing import Any

from mailhooks.api.openapi.common import openapi_json
from mailhooks.core.sources.base import Provider

_SOURCE_PROPS: dict[str, Any] = {
    "guid": {"type": "string"},
    "provider": {"type": "string", "enum": [p.value for p in Provider]},
    "domain": {"type": "string"},
    "created_at": {"type": "number"},
    "config": {"type": "object", "description": "the provider settings, secrets shown as \"set\""},
    "intake_path": {"type": "string", "description": "where the provider POSTs: /v1/sources/{guid}/events"},
}
SCHEMAS: dict[str, Any] = {
    "SourceIn": {
        "type": "object",
        "properties": {
            "provider": {"type": "string", "enum": [p.value for p in Provider]},
            "domain": {"type": "string"},
            "signing_key": {"type": "string", "description": "mailgun: the domain's HTTP webhook signing key"},
            "public_key": {"type": "string",
                           "description": "sendgrid: the Signed Event Webhook verification key (base64 DER or PEM);"
                                          " postal: the server's RSA signing key (p= value or PEM)"},
            "topic_arn": {"type": "string", "description": "ses: the SNS topic SES publishes to"},
        },
        "required": ["provider", "domain"],
    },
    "Source": {"type": "object", "properties": _SOURCE_PROPS, "required": list(_SOURCE_PROPS)},
    "SourceCreated": {
        "type": "object",
        "properties": {**_SOURCE_PROPS, "intake_url": {"type": "string"},
                       "setup": {"type": "object", "description": "what to enter at the provider (url, events); "
                                                                 "generated credentials are shown only here",
                                 "properties": {"url": {"type": "string"}, "events": {"type": "array"},
                                                "instructions": {"type": "string"}}}},
        "required": [*_SOURCE_PROPS, "intake_url", "setup"],
    },
    "SourceList": {"type": "object", "properties": {"items": {"type": "array",
                                                              "items": {"$ref": "#/components/schemas/Source"}}},
                   "required": ["items"]},
    "SourceReceived": {
        "type": "object",
        "properties": {"ids": {"type": "array", "items": {"type": "string"}}, "new": {"type": "integer"},
                       "ignored": {"type": "integer"}},
        "required": ["ids", "new", "ignored"],
    },
}

CREATE_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/SourceIn"}}}}}
INTAKE: dict[str, Any] = {
    "security": [],
    "requestBody": {"required": True,
                    "description": "the provider's own webhook body (Mailgun, Postmark, Postal: a JSON object; "
                                   "SendGrid: a JSON array; KumoMTA: a record or an array; SES: the SNS message)",
                    "content": {"application/json": {"schema": {}}}},
}
INTAKE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: openapi_json("SourceReceived", "Stored (or already known)"),
    400: openapi_json("NativeError", "Malformed body or unknown event"),
    401: openapi_json("NativeError", "Bad signature, credentials, or an expired timestamp"),
    502: openapi_json("NativeError", "The provider's signing certificate could not be fetched (SES): retry"),
    404: openapi_json("NativeError", "No such source"),
    413: openapi_json("NativeError", "Body too large"),
    429: openapi_json("NativeError", "Too many requests"),
}
