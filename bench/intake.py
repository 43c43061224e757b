"""The ``intake`` scenario: events arriving through an intake source, as the mail platform sends them.

SQLite ``mailhooks serve`` with the stack's held subscription (deliveries are stored, none sent, so only
the intake is timed):

1. SendGrid's Event Webhook: JSON arrays of ``--sendgrid-batch`` (default 100) ``delivered`` events, each
   POST signed with ECDSA P-256 over timestamp + body by a key made here, 4 POSTs in flight;
2. Mailgun's webhooks: one event per POST (as Mailgun sends them), HMAC-signed, 16 in flight.

Each rate is events stored per second, acknowledged by the source's intake URL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from harness import Stack


async def _source(stack: Stack, body: dict[str, Any]) -> str:
    async with aiohttp.ClientSession(headers=stack.auth) as session, session.post(
            f"{stack.base}/v1/sources", json={"domain": stack.domain, **body}) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["intake_url"])


async def _post_all(url: str, bodies: list[bytes], sign: Callable[[bytes], dict[str, str]],
                    concurrency: int) -> float:
    todo = iter(bodies)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def lane() -> None:
            for body in todo:
                headers = {"Content-Type": "application/json", **sign(body)}
                async with session.post(url, data=body, headers=headers) as response:
                    text = await response.text()
                    if response.status != 200:
                        raise SystemExit(f"intake answered {response.status}: {text}")

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return time.perf_counter() - started


async def sendgrid(stack: Stack, events: int, batch: int) -> float:
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    url = await _source(stack, {"provider": "sendgrid", "public_key": public})
    run = uuid.uuid4().hex[:8]
    now = int(time.time())
    bodies = [json.dumps([
        {"email": f"user{i}@example.org", "timestamp": now, "event": "delivered", "response": "250 OK",
         "sg_event_id": f"{run}-{i}", "sg_message_id": f"{run}.{i}.filter0001", "smtp-id": f"<{run}.{i}@bench>",
         "category": ["bench"]} for i in range(start, min(start + batch, events))]).encode()
        for start in range(0, events, batch)]

    def sign(body: bytes) -> dict[str, str]:
        stamp = str(int(time.time()))
        signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": stamp}

    return events / await _post_all(url, bodies, sign, concurrency=4)


async def mailgun(stack: Stack, events: int) -> float:
    signing_key = "key-" + uuid.uuid4().hex
    url = await _source(stack, {"provider": "mailgun", "signing_key": signing_key})
    run = uuid.uuid4().hex[:8]
    bodies = []
    for i in range(events):
        stamp, token = str(int(time.time())), uuid.uuid4().hex + uuid.uuid4().hex[:18]
        signature = hmac.new(signing_key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
        bodies.append(json.dumps({"signature": {"timestamp": stamp, "token": token, "signature": signature},
                                  "event-data": {"id": f"{run}-{i}", "event": "delivered", "timestamp": time.time(),
                                                 "recipient": f"user{i}@example.org", "tags": ["bench"],
                                                 "delivery-status": {"code": 250, "message": "OK"}}}).encode())
    return events / await _post_all(url, bodies, lambda _body: {}, concurrency=16)
