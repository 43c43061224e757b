"""Public keys that operators paste in: PEM, or the bare base64 DER (SubjectPublicKeyInfo) that SendGrid shows
and that Postal publishes as its DKIM-style ``p=`` value."""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from mailhooks.core.errors import ValidationFailed


def load_public_key(value: str, field: str) -> PublicKeyTypes:
    """The key in ``value``; ``ValidationFailed`` on ``field`` if it is none."""
    value = value.strip()
    if value.startswith("p="):  # the record value as Postal prints it
        value = value[2:]
    try:
        if value.startswith("-----BEGIN"):
            return serialization.load_pem_public_key(value.encode())
        return serialization.load_der_public_key(base64.b64decode("".join(value.split()), validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise ValidationFailed.field(field, f"The {field} is not a public key (PEM or base64 DER).") from exc
