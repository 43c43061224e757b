"""Unit tests of the outcome rules (``core.outcomes``), table-driven: what one attempt's result means for
its delivery, its endpoint's failing streak, the text stored, and the auto-disable window. No I/O."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest

from mailhooks.core.deliveries import Claimed, DeliveryStatus, Outcome
from mailhooks.core.outcomes import (
    ERROR_CHARS,
    attempt_outcome,
    auto_disable,
    endpoint_health,
    unsent_outcome,
    webhook_disabled_error,
)
from mailhooks.core.retry import FailureKind

SCHEDULE = (300.0, 600.0, 900.0, 3600.0, 7200.0, 14400.0)
NOW = 1_000_000.0
P, S, F, R = DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED, DeliveryStatus.REJECTED


@dataclass(frozen=True, slots=True)
class Result:
    """A send result as the sender reports it (``core.outcomes.AttemptResult``)."""

    status_code: int | None
    error: str | None = None
    excerpt: str | None = ""
    failure: FailureKind | None = None
    retry_after: str | None = None
    duration_ms: float = 12.34567
    started_at: float = NOW - 1

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def job(attempts: int = 0, deleted: bool = False, disabled: str | None = None) -> Claimed:
    return Claimed(id=7, event_pk=3, webhook_id=11, attempts=attempts, lease_expires_at=NOW + 60, event_id="e",
                   event_type="delivered", payload="{}", url="https://h.example/x", payload_format="mailgun",
                   webhook_deleted=deleted, webhook_disabled_reason=disabled, signing_key="k", domain_secret="s")


TIMEOUT = Result(None, "timeout after 10s", failure=FailureKind.TIMEOUT)

# (the result, attempts made before, status, next attempt after this schedule entry (or None), the endpoint
#  answered (ends the failing streak) or not (extends it), the delivery's last_error, the disable reason)
OUTCOMES = [
    pytest.param(Result(200, excerpt="ok"), 0, S, None, True, None, None, id="2xx"),
    pytest.param(Result(299), 6, S, None, True, None, None, id="2xx-after-the-schedule"),
    pytest.param(Result(406), 0, R, None, True, "HTTP 406", None, id="406-rejected"),
    pytest.param(Result(410), 2, R, None, True, "HTTP 410", "410 Gone from the receiver", id="410-disables"),
    pytest.param(Result(500), 0, P, 300.0, False, "HTTP 500", None, id="5xx-first-retry"),
    pytest.param(Result(404), 3, P, 3600.0, False, "HTTP 404", None, id="4xx-retried"),
    pytest.param(Result(503), 5, P, 14400.0, False, "HTTP 503", None, id="last-scheduled-retry"),
    pytest.param(Result(500), 6, F, None, False, "HTTP 500", None, id="schedule-used-up"),
    pytest.param(Result(500), 9, F, None, False, "HTTP 500", None, id="manual-retry-fails-again"),
    pytest.param(Result(500, error=""), 0, P, 300.0, False, "HTTP 500", None, id="empty-error-is-the-code"),
    pytest.param(Result(301), 0, P, 300.0, False, "HTTP 301", None, id="redirect-not-followed"),
    pytest.param(Result(429, retry_after="1"), 0, P, 300.0, False, "HTTP 429", None, id="429-sooner-ignored"),
    pytest.param(TIMEOUT, 0, P, 300.0, False, "timeout after 10s", None, id="timeout"),
    pytest.param(TIMEOUT, 6, F, None, False, "timeout after 10s", None, id="timeout-schedule-used-up"),
    pytest.param(Result(None, "no such host", failure=FailureKind.UNRESOLVABLE), 1, P, 600.0, False, "no such host",
                 None, id="unresolvable-retried"),
    pytest.param(Result(None, "reset", failure=FailureKind.CONNECTION), 0, P, 300.0, False, "reset", None,
                 id="connection"),
    pytest.param(Result(None, "bad status line", failure=FailureKind.PROTOCOL), 0, P, 300.0, False,
                 "bad status line", None, id="protocol"),
    pytest.param(Result(None, "refused: 10.0.0.1 is private", failure=FailureKind.REFUSED), 0, F, None, False,
                 "refused: 10.0.0.1 is private", None, id="refused-fails-at-once"),
    pytest.param(Result(None, "invalid URL", failure=FailureKind.INVALID_URL), 0, F, None, False, "invalid URL",
                 None, id="invalid-url-fails-at-once"),
]


@pytest.mark.parametrize(("result", "before", "status", "delay", "answered", "last_error", "disable"), OUTCOMES)
def test_attempt_outcome(result: Result, before: int, status: DeliveryStatus, delay: float | None,
                         answered: bool, last_error: str | None, disable: str | None) -> None:
    outcome = attempt_outcome(job(before), result, {"webhook-id": "msg_x"}, now=NOW, schedule=SCHEDULE)
    assert outcome.status == status
    assert (outcome.delivery_id, outcome.webhook_id, outcome.attempts) == (7, 11, before + 1)
    if delay is None:
        assert outcome.next_attempt_at is None
    else:  # the schedule entry of the attempt that just failed, ±20 % jitter
        assert outcome.next_attempt_at is not None
        assert delay * 0.8 <= outcome.next_attempt_at - NOW <= delay * 1.2
    assert (outcome.endpoint_success, outcome.endpoint_failure) == (answered, not answered)
    assert outcome.last_status_code == result.status_code
    assert outcome.last_error == last_error
    assert outcome.disable_reason == disable
    assert outcome.attempt == {
        "delivery_id": 7, "number": before + 1, "started_at": NOW - 1, "duration_ms": 12.346,
        "status_code": result.status_code, "response_excerpt": result.excerpt or None, "error": result.error,
        "request_headers": '{"webhook-id":"msg_x"}',
    }


# (the receiver's text, as excerpt or error, and what is stored): NUL and lone surrogates are refused by
# the databases, so they become U+FFFD; long error texts are cut.
STORED_TEXT = [
    pytest.param("plain", "plain", id="ascii"),
    pytest.param("a\x00b", "a\ufffdb", id="nul"),
    pytest.param("a\udcffb", "a\ufffdb", id="lone-surrogate"),
    pytest.param("é\x00" + "x" * 2000, ("é\ufffd" + "x" * 2000)[:ERROR_CHARS], id="cut"),
]


@pytest.mark.parametrize(("text", "stored"), STORED_TEXT)
def test_outside_text_is_stored_safely(text: str, stored: str) -> None:
    failed = attempt_outcome(job(), Result(None, text, failure=FailureKind.PROTOCOL), None, now=NOW,
                             schedule=SCHEDULE)
    assert failed.last_error == stored and failed.attempt is not None and failed.attempt["error"] == stored
    assert failed.attempt["request_headers"] is None  # nothing was sent
    answered = attempt_outcome(job(), Result(500, excerpt=text), None, now=NOW, schedule=SCHEDULE)
    assert answered.attempt is not None and answered.attempt["response_excerpt"] == stored


def test_a_429_waits_as_long_as_it_asks_within_bounds() -> None:
    waited = attempt_outcome(job(), Result(429, retry_after="3600"), None, now=NOW, schedule=SCHEDULE)
    assert waited.next_attempt_at == NOW + 3600
    capped = attempt_outcome(job(), Result(429, retry_after="999999"), None, now=NOW, schedule=SCHEDULE)
    assert capped.next_attempt_at == NOW + 6 * 3600


# (deleted, disabled reason on the claimed row, the delivery's error)
UNSENT = [
    pytest.param(True, None, "webhook deleted", id="deleted"),
    pytest.param(True, "410 Gone from the receiver", "webhook deleted", id="deleted-and-disabled"),
    pytest.param(False, "410 Gone from the receiver", "webhook disabled: 410 Gone from the receiver", id="410"),
    pytest.param(False, "every attempt failed for 5 days", "webhook disabled: every attempt failed for 5 days",
                 id="auto-disabled"),
]


@pytest.mark.parametrize(("deleted", "reason", "error"), UNSENT)
def test_unsent_outcome(deleted: bool, reason: str | None, error: str) -> None:
    outcome = unsent_outcome(job(attempts=2, deleted=deleted, disabled=reason))
    assert outcome.status == F and outcome.next_attempt_at is None and outcome.attempt is None
    assert outcome.attempts == 2 and outcome.last_status_code is None and outcome.last_error == error
    assert not outcome.endpoint_failure and not outcome.endpoint_success and outcome.disable_reason is None


def test_the_disabled_error_is_worded_once() -> None:
    assert webhook_disabled_error("410 Gone from the receiver") == "webhook disabled: 410 Gone from the receiver"
    assert webhook_disabled_error(None) == webhook_disabled_error("") == "webhook disabled: disabled"


# (the window in seconds, when the failing streak began, relative to now, disabled by a failure now)
WINDOWS = [
    pytest.param(432000.0, -431999.0, False, id="5-days-a-second-short"),
    pytest.param(432000.0, -432000.0, True, id="5-days-exactly"),
    pytest.param(432000.0, -432001.0, True, id="5-days-past"),
    pytest.param(3600.0, -3599.0, False, id="an-hour-short"),
    pytest.param(3600.0, -7200.0, True, id="an-hour-past"),
    pytest.param(0.0, 0.0, True, id="no-window-disables-on-the-first-failure"),
]


@pytest.mark.parametrize(("window", "since", "disabled"), WINDOWS)
def test_auto_disable_window(window: float, since: float, disabled: bool) -> None:
    """The queue disables a failing webhook whose ``failing_since`` is at or before the cutoff."""
    rule = auto_disable(NOW, window)
    assert rule.cutoff == NOW - window
    assert (NOW + since <= rule.cutoff) is disabled


@pytest.mark.parametrize(("window", "reason"), [
    (432000.0, "every attempt failed for 5 days"),
    (86400.0 * 1.5, "every attempt failed for 1.5 days"),
    (3600.0, "every attempt failed for 0.0416667 days"),
])
def test_auto_disable_reason(window: float, reason: str) -> None:
    assert auto_disable(NOW, window).reason == reason


def test_request_headers_are_stored_as_sent() -> None:
    headers = {"webhook-id": "msg_x", "webhook-signature": "v1,abc", "Content-Type": "application/json"}
    outcome = attempt_outcome(job(), Result(200), headers, now=NOW, schedule=SCHEDULE)
    assert outcome.attempt is not None and orjson.loads(outcome.attempt["request_headers"]) == headers


def _settled(webhook_id: int, *, answered: bool) -> Outcome:
    status = DeliveryStatus.SUCCEEDED if answered else DeliveryStatus.PENDING
    return Outcome(1, webhook_id, status, None, 1, None, None, None,
                   endpoint_failure=not answered, endpoint_success=answered)


def test_a_batch_ends_the_streak_of_every_webhook_that_answered_once() -> None:
    batch = [_settled(3, answered=False), _settled(1, answered=True), _settled(3, answered=True),
             _settled(2, answered=False), _settled(2, answered=False)]
    assert endpoint_health(batch) == ([1, 3], [2])
    assert endpoint_health([]) == ([], [])
