"""``webhook-id``: the id receivers de-duplicate on (delivery is at least once).

It must be the same on every attempt, retry and replay of a delivery, and it must not tell a receiver
anything else: ``msg_<delivery id>`` told every receiver how many deliveries the whole platform had
made. It is a MAC of the delivery id under a key of the installation's own, kept in the database and
given to no one. Not the domain's secret: Kirim receivers hold that one to check signatures, and with
it they could compute the MAC of every counter value until one matched.
"""

from __future__ import annotations

import base64
import hmac
import secrets

KEY_BYTES = 32
ID_BYTES = 16  # 128 bits: unguessable, and short enough for a header and a log line


def new_message_id_key() -> str:
    """A fresh key, hex-encoded for storage (made once per installation)."""
    return secrets.token_hex(KEY_BYTES)


def message_id(key: bytes, delivery_id: int) -> str:
    """``msg_`` and 26 lowercase base32 characters: HMAC-SHA256(key, delivery id), first 128 bits."""
    digest = hmac.digest(key, delivery_id.to_bytes(8, "big", signed=True), "sha256")[:ID_BYTES]
    return "msg_" + base64.b32encode(digest).decode("ascii").rstrip("=").lower()
