"""The pure parts of the intake sources: the canonical suppression meaning, Mailgun's token memory, the
SNS host rule, and each adapter's mapping of the provider's documented event names (no server)."""

from __future__ import annotations

import json

import pytest

from mailhooks.core.sources import ADAPTERS
from mailhooks.core.sources.base import Provider, Rejection, SourceRejected
from mailhooks.core.sources.mailgun import TokenMemory
from mailhooks.core.sources.ses import allowed_url
from mailhooks.core.suppressions import SuppressionKind, suppression_kind
from tests.source_samples import kumo_batch, postmark_records, sendgrid_batch


@pytest.mark.parametrize(("event", "kind"), [
    ({"event": "permanent_fail", "severity": "permanent", "reason": "bounce"}, SuppressionKind.BOUNCE),
    ({"event": "failed", "severity": "permanent"}, SuppressionKind.BOUNCE),  # as Mailgun-format receivers see it
    ({"event": "permanent_fail", "severity": "permanent", "reason": "old"}, None),  # expired in the queue
    ({"event": "permanent_fail", "reason": "suppress-bounce"}, None),  # already suppressed
    ({"event": "temporary_fail", "severity": "temporary"}, None),
    ({"event": "failed", "reason": "Bounced Address"}, None),  # SendGrid dropped: not sent
    ({"event": "complained"}, SuppressionKind.COMPLAINT),
    ({"event": "unsubscribed"}, SuppressionKind.UNSUBSCRIBE),
    ({"event": "delivered"}, None),
    ({"event": "bounced"}, SuppressionKind.BOUNCE),  # Kirim's word for a hard bounce
    ({"event": "bounced", "severity": "temporary"}, None),
])
def test_suppression_kind(event: dict[str, str], kind: SuppressionKind | None) -> None:
    assert suppression_kind(event["event"], event) == kind


def test_token_memory_refuses_a_token_reused_with_another_body_for_five_minutes() -> None:
    memory = TokenMemory(limit=3)
    memory.check("t1", b"body", now=1000.0)
    memory.check("t1", b"body", now=1001.0)  # the provider's retry
    with pytest.raises(SourceRejected) as refused:
        memory.check("t1", b"other", now=1002.0)
    assert refused.value.reason is Rejection.REPLAYED
    memory.check("t1", b"other", now=1000.0 + 301)  # the first sighting has expired (and so has its timestamp)
    for i in range(10):  # bounded: the oldest are forgotten first
        memory.check(f"x{i}", b"b", now=2000.0 + i)
    assert len(memory._seen) <= 4


@pytest.mark.parametrize(("url", "extra", "ok"), [
    ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", (), True),
    ("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem", (), True),
    ("http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", (), False),  # not https
    ("https://sns.us-east-1.amazonaws.com:8443/x.pem", (), False),
    ("https://sns.us-east-1.amazonaws.com.evil.example/x.pem", (), False),
    ("https://evil.example/sns.us-east-1.amazonaws.com/x.pem", (), False),
    ("https://user@sns.us-east-1.amazonaws.com@evil.example/x.pem", (), False),
    ("http://127.0.0.1:9999/cert.pem", ("127.0.0.1:9999",), True),  # a test stand-in, named by the operator
    ("http://127.0.0.1:9998/cert.pem", ("127.0.0.1:9999",), False),
    (None, (), False),
])
def test_sns_urls_only_on_amazon_sns_hosts(url: str | None, extra: tuple[str, ...], ok: bool) -> None:
    if ok:
        assert allowed_url(url, extra) == url
    else:
        with pytest.raises(SourceRejected):
            allowed_url(url, extra)


def test_every_documented_event_is_mapped_or_acknowledged() -> None:
    sendgrid = ADAPTERS[Provider.SENDGRID].parse(json.dumps(sendgrid_batch("u")).encode())
    assert (len(sendgrid.items), sendgrid.ignored) == (10, 1)
    kumo = ADAPTERS[Provider.KUMOMTA].parse(json.dumps(kumo_batch("a@example.com")).encode())
    assert (len(kumo.items), kumo.ignored) == (5, 1)
    for record in postmark_records("a@example.com").values():
        parsed = ADAPTERS[Provider.POSTMARK].parse(json.dumps(record).encode())
        assert len(parsed.items) == 1 and parsed.items[0]["recipient"] == "a@example.com"
    reactivated = {**postmark_records("a@example.com")["SubscriptionChange"], "SuppressSending": False}
    assert ADAPTERS[Provider.POSTMARK].parse(json.dumps(reactivated).encode()).ignored == 1


def test_ids_are_stable_for_a_retry_and_differ_between_events() -> None:
    records = postmark_records("a@example.com")
    parse = ADAPTERS[Provider.POSTMARK].parse
    first = parse(json.dumps(records["Open"]).encode()).items[0]["id"]
    assert parse(json.dumps(records["Open"], indent=2).encode()).items[0]["id"] == first  # same record, reformatted
    assert parse(json.dumps({**records["Open"], "ReceivedAt": "2019-11-05T16:40:00Z"}).encode()).items[0]["id"] != first
    assert len(first) <= 128
