"""``webhook-id`` must stay byte-for-byte what it was (receivers de-duplicate on it across upgrades): the
fast path is pinned against the standard library's HMAC and base32."""

from __future__ import annotations

import base64
import hmac
import random

from mailhooks.core.message_ids import message_id, new_message_id_key


def reference(key: bytes, delivery_id: int) -> str:
    digest = hmac.digest(key, delivery_id.to_bytes(8, "big", signed=True), "sha256")[:16]
    return "msg_" + base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def test_same_ids_as_hmac_and_base32() -> None:
    rng = random.Random(7)
    keys = [bytes.fromhex(new_message_id_key()) for _ in range(3)] + [b"", b"k" * 64, b"long" * 40]
    for key in keys:
        for delivery_id in [0, 1, -1, 2**63 - 1, -(2**63)] + [rng.randrange(1, 2**40) for _ in range(300)]:
            assert message_id(key, delivery_id) == reference(key, delivery_id)


def test_differs_per_key_and_delivery() -> None:
    a, b = bytes.fromhex(new_message_id_key()), bytes.fromhex(new_message_id_key())
    assert len({message_id(a, 1), message_id(a, 2), message_id(b, 1)}) == 3
