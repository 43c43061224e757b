"""OpenAPI declarations of the signing-key rotation (``api/signing_key.py``)."""

from __future__ import annotations

from typing import Any

SCHEMAS: dict[str, Any] = {
    "RotatedSigningKey": {
        "type": "object",
        "properties": {
            "http_signing_key": {"type": "string", "description": "the new key (Mailgun's format)"},
            "whsec": {"type": "string", "description": "the new key as a Standard Webhooks secret"},
            "previous_valid_until": {
                "type": ["string", "null"], "format": "date-time",
                "description": "until when the replaced key also signs webhook-signature (UTC); "
                               "null when MAILHOOKS_SIGNING_KEY_OVERLAP is 0",
            },
        },
        "required": ["http_signing_key", "whsec", "previous_valid_until"],
    },
}
