"""Unit tests of the pure rules of operational events (``core.operational``): the payload a receiver
gets, the email a person gets, the throttle, and the input checks. No I/O."""

from __future__ import annotations

import pytest

from mailhooks.core.errors import ValidationFailed
from mailhooks.core.operational import (
    OperationalEvent,
    OperationalKind,
    alert_email,
    check_alert_email,
    check_kinds,
    mail_due_at,
    payload,
)

SUB = {"guid": "g-1", "url": "https://hooks.example/x", "event_type": "delivered", "domain": "example.test"}
DELIVERY = {"id": 9, "event_id": "e-1", "domain": "example.test", "status": "failed", "attempts": 4,
            "last_status_code": 500, "last_error": "HTTP 500"}


def event(kind: OperationalKind, detail: str | None = None, delivery: dict[str, object] | None = None,
          at: float = 1_764_550_923.5) -> OperationalEvent:
    return OperationalEvent(id=17, kind=kind, occurred_at=at, detail=detail, subscription=SUB, delivery=delivery)


def test_payloads_follow_the_standard_webhooks_shape() -> None:
    disabled = payload(event(OperationalKind.WEBHOOK_DISABLED, "410 Gone from the receiver"))
    assert disabled == {"type": "webhook.disabled", "timestamp": "2025-12-01T01:02:03.500000Z",
                        "data": {"id": "op_17", "subscription": SUB, "reason": "410 Gone from the receiver"}}
    assert payload(event(OperationalKind.WEBHOOK_FAILING))["data"] == {"id": "op_17", "subscription": SUB}
    exhausted = payload(event(OperationalKind.DELIVERY_EXHAUSTED, "HTTP 500", DELIVERY))
    assert exhausted["data"]["delivery"] == DELIVERY and "reason" not in exhausted["data"]


def test_one_event_is_an_alert_several_are_a_digest() -> None:
    subject, body = alert_email([event(OperationalKind.WEBHOOK_DISABLED, "410 Gone from the receiver")], "alice")
    assert subject == "[mailhooks] webhook.disabled: https://hooks.example/x"
    assert "reason: 410 Gone from the receiver" in body and "alice" in body
    subject, body = alert_email([event(OperationalKind.WEBHOOK_FAILING),
                                 event(OperationalKind.DELIVERY_EXHAUSTED, "HTTP 500", DELIVERY),
                                 event(OperationalKind.WEBHOOK_RECOVERED)], "alice")
    assert subject == "[mailhooks] digest: 3 alerts for https://hooks.example/x"
    assert [line.split("  ")[1] for line in body.splitlines() if line.startswith("2025-")] == [
        "webhook.failing", "delivery.exhausted", "webhook.recovered"]
    assert "delivery 9, event e-1: HTTP 500" in body


@pytest.mark.parametrize(("last", "due"), [(None, float("-inf")), (1000.0, 4600.0)])
def test_throttle(last: float | None, due: float) -> None:
    assert mail_due_at(last, 3600) == due


@pytest.mark.parametrize("value", [["webhook.failing"], list(OperationalKind)])
def test_known_kinds(value: list[str]) -> None:
    assert check_kinds(value) == [OperationalKind(v) for v in value]


@pytest.mark.parametrize("value", [None, [], "webhook.failing", ["delivered"], ["webhook.failing"] * 2, [1]])
def test_bad_kinds(value: object) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_kinds(value)
    assert list(refused.value.errors) == ["event_types"]


@pytest.mark.parametrize(("value", "stored"), [("oncall@example.com", "oncall@example.com"), (None, None), ("", None)])
def test_alert_addresses(value: object, stored: str | None) -> None:
    assert check_alert_email(value) == stored


@pytest.mark.parametrize("value", ["oncall", "a@b", "a b@example.com", "x@example.com\r\nBcc: y@example.com",
                                   "<x@example.com>", "x@example.com\n", 7, "x" * 65 + "@example.com"])
def test_bad_alert_addresses(value: object) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_alert_email(value)
    assert list(refused.value.errors) == ["email"]
