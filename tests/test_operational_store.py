"""Operational events as the delivery queue notes them, on both backends, in-process: each transition once,
even when a result batch is written again (a retry after a lost answer), and in the transaction of the
state change; nothing noted about operational webhooks themselves."""

from __future__ import annotations

import time
import uuid

import orjson
from sqlalchemy import select, update

from mailhooks.core import accounts
from mailhooks.core.deliveries import Claimed, DeliveryStatus, Outcome
from mailhooks.core.events import Intake
from mailhooks.core.models import NewWebhook
from mailhooks.core.operational import OperationalKind
from mailhooks.db import schema as t
from mailhooks.db.intake import IntakeStore
from mailhooks.db.operational_outbox import OperationalOutbox
from mailhooks.db.operational_webhooks import OperationalWebhooks
from mailhooks.db.queue import delivery_queue
from mailhooks.db.store import Store


def result(job: Claimed, status: DeliveryStatus, code: int | None, disable_reason: str | None = None) -> Outcome:
    answered = status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.REJECTED)
    attempt = {"delivery_id": job.id, "number": job.attempts + 1, "started_at": time.time(), "duration_ms": 1.0,
               "status_code": code, "response_excerpt": None, "error": None, "request_headers": None}
    return Outcome(job.id, job.webhook_id, status, None, job.attempts + 1, attempt, code,
                   None if answered else f"HTTP {code}", endpoint_failure=not answered, endpoint_success=answered,
                   disable_reason=disable_reason)


async def noted(store: Store, webhook_id: int) -> list[str]:
    async with store.read() as conn:
        rows = await conn.execute(select(t.operational_events.c.kind)
                                  .where(t.operational_events.c.webhook_id == webhook_id)
                                  .order_by(t.operational_events.c.id))
        return sorted(row.kind for row in rows)


async def test_each_transition_is_noted_once_even_when_a_batch_is_written_again(store: Store) -> None:
    created = await accounts.create_account(store, f"op{uuid.uuid4().hex[:10]}")
    account = created.account
    domain = await accounts.add_domain(store, account, f"{uuid.uuid4().hex[:8]}.example")
    (hook,) = await store.change_webhooks(add=[NewWebhook(account.id, domain.id, "delivered", "https://h.example/x",
                                                          "mailgun")])
    ops = await OperationalWebhooks(store).create(account.id, "https://ops.example/x", list(OperationalKind))
    intake = Intake(store, IntakeStore(store))
    body = [{"domain": domain.name, "event": "delivered", "recipient": f"u{i}@x.example"} for i in range(3)]
    await intake.ingest(account, body)
    queue = delivery_queue(store)
    jobs = [job for job in await queue.claim("a", 100, 60) if job.webhook_id == hook.id]
    assert len(jobs) == 3

    failed = [result(jobs[0], DeliveryStatus.FAILED, 500)]
    for _ in range(2):  # the same batch twice: its answer was lost, the writer tries again
        await queue.record("a", failed, (), 3600)
    assert await noted(store, hook.id) == ["delivery.exhausted", "webhook.failing"]

    recovered = [result(jobs[1], DeliveryStatus.SUCCEEDED, 200)]  # PostgreSQL: the one-statement path
    for _ in range(2):
        await queue.record("a", recovered, (), 3600)
    assert await noted(store, hook.id) == ["delivery.exhausted", "webhook.failing", "webhook.recovered"]

    gone = [result(jobs[2], DeliveryStatus.REJECTED, 410, "410 Gone from the receiver")]
    for _ in range(2):
        await queue.record("a", gone, (), 3600)
    assert await noted(store, hook.id) == ["delivery.exhausted", "webhook.disabled", "webhook.failing",
                                           "webhook.recovered"]

    # Fanned out once each, to the account's operational webhook: four deliveries of payload format operational.
    outbox = OperationalOutbox(store, email_enabled=False)
    assert await outbox.fan_out() == 4
    assert await outbox.fan_out() == 0
    op_jobs = [job for job in await queue.claim("a", 100, 60) if job.payload_format == "operational"]
    assert sorted(job.event_type for job in op_jobs) == sorted(k.value for k in OperationalKind)
    assert all(job.url == "https://ops.example/x" for job in op_jobs)

    # An operational webhook failing for good reports nothing about itself.
    await queue.record("a", [result(job, DeliveryStatus.FAILED, 500) for job in op_jobs], (), 3600)
    async with store.read() as conn:
        op_ids = [row.id for row in await conn.execute(
            select(t.webhooks.c.id).where(t.webhooks.c.group_id == ops["guid"]))]
    for op_id in op_ids:
        assert await noted(store, op_id) == []


async def test_days_of_failures_disable_with_that_reason(store: Store) -> None:
    created = await accounts.create_account(store, f"op{uuid.uuid4().hex[:10]}")
    account = created.account
    domain = await accounts.add_domain(store, account, f"{uuid.uuid4().hex[:8]}.example")
    (hook,) = await store.change_webhooks(add=[NewWebhook(account.id, domain.id, "delivered", "https://h.example/y",
                                                          "mailgun")])
    await OperationalWebhooks(store).create(account.id, "https://ops.example/y", [OperationalKind.WEBHOOK_DISABLED])
    await Intake(store, IntakeStore(store)).ingest(account, {"domain": domain.name, "event": "delivered",
                                                            "recipient": "u@x.example"})
    queue = delivery_queue(store)
    (job,) = [job for job in await queue.claim("b", 100, 60) if job.webhook_id == hook.id]
    async with store.write() as conn:  # failing for six days already
        await conn.execute(update(t.webhooks).where(t.webhooks.c.id == hook.id)
                           .values(failing_since=time.time() - 6 * 86400))
    await queue.record("b", [result(job, DeliveryStatus.PENDING, 503)], (), 5 * 86400)
    assert await noted(store, hook.id) == ["webhook.disabled"]  # the streak was already under way: no failing
    outbox = OperationalOutbox(store, email_enabled=False)
    assert await outbox.fan_out() == 1
    (op_job,) = [j for j in await queue.claim("b", 100, 60) if j.payload_format == "operational"]
    data = orjson.loads(op_job.payload)
    assert data["type"] == "webhook.disabled"
    assert data["data"]["reason"] == "every attempt failed for 5 days"
    assert data["data"]["subscription"] == {"guid": hook.guid, "url": "https://h.example/y", "event_type": "delivered",
                                            "domain": domain.name}
