"""The queue's storage rules on both backends, in-process: leases, lease guards, expired-lease re-claims,
disjoint concurrent claims, auto-disable (and the shipped window on its boundary), release on shutdown,
retention."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import update

from mailhooks.config import Settings
from mailhooks.core import accounts
from mailhooks.core.deliveries import Outcome
from mailhooks.core.events import Intake
from mailhooks.core.models import Account, Domain, NewWebhook, Webhook
from mailhooks.core.outcomes import attempt_outcome
from mailhooks.core.retry import FailureKind
from mailhooks.db import schema as t
from mailhooks.db.deliveries import Deliveries
from mailhooks.db.intake import IntakeStore
from mailhooks.db.queue import DeliveryQueue, delivery_queue
from mailhooks.db.store import Store
from mailhooks.worker.health import LoopHealth
from mailhooks.worker.writer import ResultWriter


async def setup(store: Store, urls: int = 1) -> tuple[Account, Domain, list[Webhook]]:
    created = await accounts.create_account(store, f"q{uuid.uuid4().hex[:10]}")
    domain = await accounts.add_domain(store, created.account, f"{uuid.uuid4().hex[:8]}.example")
    hooks = await store.change_webhooks(add=[
        NewWebhook(created.account.id, domain.id, "delivered", f"https://h{i}.example/x", "mailgun")
        for i in range(urls)])
    return created.account, domain, hooks


async def emit(store: Store, account: Account, domain: Domain, count: int) -> list[str]:
    body = [{"domain": domain.name, "event": "delivered", "recipient": f"u{i}@x.example"} for i in range(count)]
    ids, _, new = await Intake(store, IntakeStore(store)).ingest(account, body)
    assert new == count
    return ids


def outcome(claimed_id: int, webhook_id: int, status: str = "succeeded", code: int | None = 200) -> Outcome:
    return Outcome(claimed_id, webhook_id, status, None, 1,
                   {"delivery_id": claimed_id, "number": 1, "started_at": time.time(), "duration_ms": 1.0,
                    "status_code": code, "response_excerpt": None, "error": None, "request_headers": None},
                   code, None, endpoint_failure=status != "succeeded", endpoint_success=status == "succeeded")


async def drain_other_tenants(queue: DeliveryQueue) -> None:
    """Leave nothing due from earlier tests (they share the module's database)."""
    while batch := await queue.claim("sweeper", 1000, 3600):
        await queue.record("sweeper", [outcome(c.id, c.webhook_id) for c in batch])


async def test_lease_guard_and_expired_lease_reclaim(store: Store) -> None:
    queue = delivery_queue(store)
    await drain_other_tenants(queue)
    account, domain, hooks = await setup(store, urls=2)
    await emit(store, account, domain, 3)
    first = await queue.claim("a", 100, 0.3)
    assert len(first) == 6 and {c.webhook_id for c in first} == {h.id for h in hooks}
    assert all(c.signing_key == account.signing_key and c.domain_secret == domain.secret for c in first)
    assert await queue.claim("b", 100, 60) == []  # leased
    await asyncio.sleep(0.4)
    second = await queue.claim("b", 100, 60)  # the lease expired: re-claimed
    assert sorted(c.id for c in second) == sorted(c.id for c in first)
    await queue.record("a", [outcome(c.id, c.webhook_id, "failed", 500) for c in first])  # stale owner: ignored
    await queue.record("b", [outcome(c.id, c.webhook_id) for c in second])
    rows = await Deliveries(store).list_deliveries(account.id)
    assert {r["status"] for r in rows} == {"succeeded"}
    detail = await Deliveries(store).get_delivery(account.id, rows[0]["id"])
    assert detail is not None and len(detail[1]) == 2  # both attempts are recorded all the same


async def test_concurrent_claims_are_disjoint(store: Store) -> None:
    queue = delivery_queue(store)
    await drain_other_tenants(queue)
    account, domain, _ = await setup(store)
    await emit(store, account, domain, 300)
    stores = [Store(store.url) for _ in range(3)]
    others = [delivery_queue(other) for other in stores]
    try:
        batches = await asyncio.gather(*(o.claim(f"w{i}", 60, 60) for i, o in enumerate(others * 2)))
    finally:
        for other in stores:
            await other.close()
    ids = [c.id for batch in batches for c in batch]
    assert len(ids) == len(set(ids)) == 300


async def test_auto_disable_and_release(store: Store) -> None:
    queue = delivery_queue(store)
    await drain_other_tenants(queue)
    account, domain, (hook,) = await setup(store)
    await emit(store, account, domain, 2)
    claimed = await queue.claim("w", 10, 60)
    await queue.record("w", [outcome(claimed[0].id, hook.id, "pending", 500)], disable_after=3600)
    row = await store.get_webhook_by_id(hook.id)
    assert row is not None and row.failing_since is not None and row.disabled_at is None
    await queue.record("w", [outcome(claimed[1].id, hook.id, "pending", 500)], disable_after=0.0)
    row = await store.get_webhook_by_id(hook.id)
    assert row is not None and row.disabled_at is not None and "failed" in (row.disabled_reason or "")
    assert await Deliveries(store).enable_webhook(account.id, hook.guid)
    row = await store.get_webhook_by_id(hook.id)
    assert row is not None and row.disabled_at is None and row.failing_since is None

    await emit(store, account, domain, 4)
    mine = await queue.claim("leaving", 10, 60)
    assert len(mine) >= 4
    assert await queue.release_owned("leaving") == len(mine)
    assert len(await queue.claim("next", 10, 60)) == len(mine)


@dataclass(frozen=True, slots=True)
class _ServerError:
    """A send result: the receiver answered 500."""

    status_code: int | None = 500
    ok: bool = False
    duration_ms: float = 1.0
    started_at: float = 0.0
    excerpt: str | None = None
    error: str | None = None
    retry_after: str | None = None
    failure: FailureKind | None = None


async def test_the_shipped_auto_disable_window_on_its_boundary(store: Store) -> None:
    """MAILHOOKS_DISABLE_AFTER_SECONDS as shipped (5 days), from the outcome rules through the dispatcher's
    result writer to the SQL: after another failed attempt, a webhook whose failing streak began just
    under the window ago stays enabled, one whose streak began just over it is disabled, saying why."""
    settings = Settings.from_env({})
    window = settings.disable_after_seconds
    assert window == 5 * 86400  # the README's default
    queue = delivery_queue(store)
    await drain_other_tenants(queue)
    account, domain, (under, over) = await setup(store, urls=2)
    margin = 30.0  # far more than the test takes, far less than the window
    began = {under.id: time.time() - window + margin, over.id: time.time() - window - margin}
    async with store.write() as conn:
        for hook_id, since in began.items():
            await conn.execute(update(t.webhooks).where(t.webhooks.c.id == hook_id).values(failing_since=since))
    await emit(store, account, domain, 1)
    claimed = await queue.claim("boundary", 10, 60)
    assert sorted(c.webhook_id for c in claimed) == sorted(began)
    writer = ResultWriter(queue, "boundary", settings, LoopHealth(settings.poll_interval), lambda: None)
    for job in claimed:
        writer.add(attempt_outcome(job, _ServerError(), None, now=time.time(), schedule=settings.retry_schedule))
    await writer.flush()

    kept = await store.get_webhook_by_id(under.id)
    assert kept is not None and kept.disabled_at is None and kept.disabled_reason is None
    assert kept.failing_since == pytest.approx(began[under.id])  # the streak goes on
    disabled = await store.get_webhook_by_id(over.id)
    assert disabled is not None and disabled.disabled_at is not None
    assert disabled.disabled_reason == "every attempt failed for 5 days"
    rows = await Deliveries(store).list_deliveries(account.id)
    assert {r["status"] for r in rows} == {"pending"}  # disabling does not change the delivery's own fate


async def test_retention_purges_finished_rows_only(store: Store) -> None:
    queue = delivery_queue(store)
    await drain_other_tenants(queue)
    account, domain, (hook,) = await setup(store)
    await emit(store, account, domain, 5)
    claimed = await queue.claim("w", 10, 60)
    await queue.record("w", [outcome(c.id, hook.id) for c in claimed[:3]])  # 3 finished, 2 in flight
    cutoff = time.time() + 1
    while await queue.purge(cutoff, batch=2):
        pass
    rows = await Deliveries(store).list_deliveries(account.id)
    assert len(rows) == 2 and {r["status"] for r in rows} == {"delivering"}
    assert len(await Deliveries(store).list_events(account.id, None, None, None, None, 100)) == 2


async def test_group_commit_keeps_ingest_idempotent(store: Store) -> None:
    """Requests combined into one transaction: the same ids from two requests are stored once."""
    queue = delivery_queue(store)
    await drain_other_tenants(queue)
    account, domain, _ = await setup(store, urls=2)
    intake = Intake(store, IntakeStore(store))
    body = [{"id": f"same-{i}", "domain": domain.name, "event": "delivered", "recipient": "a@x.example"}
            for i in range(50)]
    results = await asyncio.gather(*(intake.ingest(account, body) for _ in range(4)),
                                   intake.ingest(account, body[:1] * 3))
    assert sum(new for _, _, new in results) == 50
    assert all(ids == [f"same-{i}" for i in range(50)] for ids, _, _ in results[:4])
    assert len(await Deliveries(store).list_deliveries(account.id, limit=1000)) == 100


async def test_skipping_a_saturated_webhook_looks_at_a_bounded_head(store: Store) -> None:
    """A big backlog for one (saturated) webhook: the windowed claim looks only at the head of the queue
    and finds nothing; the full claim reaches the other webhook's rows behind it. Both skip the first."""
    queue = delivery_queue(store)
    await drain_other_tenants(queue)
    account, domain, (slow,) = await setup(store)
    await emit(store, account, domain, 50)  # 50 rows for the slow webhook, due first
    fast = (await store.change_webhooks(add=[
        NewWebhook(account.id, domain.id, "opened", "https://fast.example/x", "mailgun")]))[0]
    await emit_opened(store, account, domain, 5)

    assert await queue.claim("w", 10, 60, [slow.id], head=20) == []  # the head holds only the slow one's rows
    within = await queue.claim("w", 10, 60, [slow.id], head=60)  # a window that reaches them
    assert len(within) == 5 and {c.webhook_id for c in within} == {fast.id}
    await queue.record("w", [outcome(c.id, c.webhook_id) for c in within])
    await emit_opened(store, account, domain, 5)
    assert await queue.claim("w", 10, 60, [slow.id], head=20) == []
    full = await queue.claim("w", 10, 60, [slow.id])  # no window: the whole queue
    assert len(full) == 5 and {c.webhook_id for c in full} == {fast.id}
    rest = await queue.claim("w", 100, 60, [], head=20)  # nothing to skip: the window does not apply
    assert len(rest) == 50 and {c.webhook_id for c in rest} == {slow.id}


async def emit_opened(store: Store, account: Account, domain: Domain, count: int) -> None:
    body = [{"domain": domain.name, "event": "opened", "recipient": f"p{i}-{uuid.uuid4().hex[:6]}@x.example"}
            for i in range(count)]
    await Intake(store, IntakeStore(store)).ingest(account, body)
