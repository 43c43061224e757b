"""Unit tests of the delivery rules: signatures, retry policy, fan-out, ingest validation (no I/O)."""

from __future__ import annotations

import random

import pytest

from mailhooks.core.deliveries import DeliveryStatus
from mailhooks.core.errors import ValidationFailed
from mailhooks.core.events import parse_events, targets_for
from mailhooks.core.models import Webhook
from mailhooks.core.payloads import kirim_signature
from mailhooks.core.retry import (
    FailureKind,
    decide,
    parse_retry_after,
)

SCHEDULE = (300.0, 600.0, 900.0, 3600.0, 7200.0, 14400.0)


def test_kirim_signature_vector() -> None:
    # docs/dialects/kirimemail.md#signatures: HMAC-SHA256(key = secret + message_guid, message = "")
    assert kirim_signature("8ad78587000000000000000000000000", "550e8400-e29b-41d4-a716-446655440000") == (
        "0bf98d7964e77488c6eea1eb738c17583600f9dbfffad82152b4b9e850dbfbd5")


def _decide(code: int | None, n: int = 1, **kw: object) -> object:
    return decide(attempt_number=n, status_code=code, now=1000.0,
                  schedule=SCHEDULE, rng=random.Random(1), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [200, 201, 204, 299])
def test_2xx_succeeds(code: int) -> None:
    done = decide(attempt_number=1, status_code=code, now=0, schedule=SCHEDULE)
    assert done.status == DeliveryStatus.SUCCEEDED


def test_406_rejects_and_410_disables() -> None:
    rejected = decide(attempt_number=1, status_code=406, now=0, schedule=SCHEDULE)
    assert rejected.status == DeliveryStatus.REJECTED
    gone = decide(attempt_number=1, status_code=410, now=0, schedule=SCHEDULE)
    assert gone.status == DeliveryStatus.REJECTED and gone.disable_reason


@pytest.mark.parametrize("code", [None, 301, 400, 404, 429, 500, 503])
def test_everything_else_retries_on_the_schedule_with_jitter(code: int | None) -> None:
    for n, base in enumerate(SCHEDULE, start=1):
        d = decide(attempt_number=n, status_code=code, now=1000.0, schedule=SCHEDULE)
        assert d.status == DeliveryStatus.PENDING and d.next_attempt_at is not None
        assert base * 0.8 <= d.next_attempt_at - 1000.0 <= base * 1.2
    last = decide(attempt_number=7, status_code=code, now=0, schedule=SCHEDULE)
    assert last.status == DeliveryStatus.FAILED


@pytest.mark.parametrize("failure", [FailureKind.REFUSED, FailureKind.INVALID_URL])
def test_refused_target_or_unsendable_url_fails_at_once(failure: FailureKind) -> None:
    d = decide(attempt_number=1, status_code=None, now=0, schedule=SCHEDULE,
               failure=failure)
    assert d.status == DeliveryStatus.FAILED


@pytest.mark.parametrize("failure", [FailureKind.UNRESOLVABLE, FailureKind.TIMEOUT, FailureKind.CONNECTION,
                                     FailureKind.PROTOCOL])
def test_dns_and_network_failures_follow_the_schedule(failure: FailureKind) -> None:
    d = decide(attempt_number=1, status_code=None, now=0, schedule=SCHEDULE, failure=failure)
    assert d.status == DeliveryStatus.PENDING and d.next_attempt_at is not None
    assert decide(attempt_number=7, status_code=None, now=0, schedule=SCHEDULE,
                  failure=failure).status == DeliveryStatus.FAILED


def test_retry_after_is_honoured_within_bounds() -> None:
    d = decide(attempt_number=1, status_code=429, now=0, schedule=(1.0,), retry_after="120")
    assert d.next_attempt_at == 120.0
    capped = decide(attempt_number=1, status_code=429, now=0, schedule=(1.0,), retry_after="999999")
    assert capped.next_attempt_at == 6 * 3600.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480.0 - 60) == pytest.approx(60.0)
    assert parse_retry_after("soon", 0) is None


def _hook(id_: int, url: str, domain_id: int | None, fmt: str = "mailgun", event_type: str = "delivered",
          disabled: bool = False, deleted: bool = False) -> Webhook:
    return Webhook(id=id_, guid=str(id_), account_id=1, domain_id=domain_id, event_type=event_type, url=url,
                   payload_format=fmt, group_id=None, description=None, created_at=0, modified_at=0,
                   deleted_at=1.0 if deleted else None, disabled_at=1.0 if disabled else None,
                   disabled_reason="410" if disabled else None)


def test_fan_out_rules() -> None:
    hooks = [
        _hook(1, "https://a", None),  # account level, same url+format as 2: merged
        _hook(2, "https://a", 7),
        _hook(3, "https://a", 7, fmt="kirim"),  # other format: its own delivery
        _hook(4, "https://b", 8),  # other domain
        _hook(5, "https://c", 7, event_type="opened"),  # other type
        _hook(6, "https://d", 7, deleted=True),
        _hook(7, "https://e", 7, disabled=True),  # kept, written as failed
    ]
    foreign = Webhook(id=8, guid="8", account_id=2, domain_id=None, event_type="delivered", url="https://f",
                      payload_format="mailgun", group_id=None, description=None, created_at=0, modified_at=0)
    targets = targets_for("delivered", 1, 7, [*hooks, foreign])  # another account's rows never match
    assert [(t.webhook_id, t.disabled_reason is not None) for t in targets] == [(2, False), (3, False), (7, True)]


def test_parse_events_validation() -> None:
    items, many = parse_events({"domain": "X.example", "event": "bounce", "recipient": "a@b"})
    assert not many and items[0].event_type == "permanent_fail" and items[0].domain == "x.example"
    with pytest.raises(ValidationFailed) as err:
        parse_events([{"domain": "d", "event": "delivered", "recipient": "r", "timestamp": "x", "tags": [1]}, 3])
    assert set(err.value.errors) == {"0.timestamp", "0.tags", "1"}
    for body in ([], [{}] * 1001, "x", None):
        with pytest.raises(ValidationFailed):
            parse_events(body)


async def test_health_reports_a_stalled_or_dead_dispatcher_loop(tmp_path: object) -> None:
    import asyncio
    import time

    from mailhooks.config import Settings
    from mailhooks.core.targets import TargetPolicy
    from mailhooks.db.store import Store
    from mailhooks.worker.dispatcher import Dispatcher

    store = Store("sqlite:///:memory:")
    dispatcher = Dispatcher(store, Settings(poll_interval=0.1), TargetPolicy())
    assert dispatcher.health_problem() == "dispatcher not started"

    async def forever() -> None:
        await asyncio.sleep(3600)

    dispatcher._loop_task = asyncio.create_task(forever())
    assert dispatcher.health_problem() is None
    dispatcher.health.last_tick = time.monotonic() - 120
    assert "not ticked" in (dispatcher.health_problem() or "")
    dispatcher._loop_task.cancel()

    async def boom() -> None:
        raise RuntimeError("database gone")

    dispatcher._loop_task = asyncio.create_task(boom())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert "stopped" in (dispatcher.health_problem() or "")
    await store.close()
