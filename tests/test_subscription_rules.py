"""The subscription settings' rules as pure functions: what is valid (``core.subscriptions.parse_changes``),
what reads back masked (``core.masking``), and which events a filter lets through (``event_matches``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mailhooks.core.errors import ValidationFailed
from mailhooks.core.events import targets_for
from mailhooks.core.masking import MASK, is_sensitive, mask_value, masked_headers, masked_url, unmask_headers
from mailhooks.core.models import Webhook
from mailhooks.core.subscriptions import (
    DEFAULT_SETTINGS,
    Ordering,
    event_matches,
    parse_changes,
    settings_from_columns,
    settings_to_columns,
)
from mailhooks.worker.attempts import with_static_headers


def errors_of(body: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        parse_changes(body, DEFAULT_SETTINGS)
    return caught.value.errors


@pytest.mark.parametrize(("body", "field"), [
    ({"headers": {"Host": "x"}}, "headers.Host"),
    ({"headers": {"content-length": "1"}}, "headers.content-length"),
    ({"headers": {"Content-Type": "text/plain"}}, "headers.Content-Type"),
    ({"headers": {"Transfer-Encoding": "chunked"}}, "headers.Transfer-Encoding"),
    ({"headers": {"Connection": "close"}}, "headers.Connection"),
    ({"headers": {"Upgrade": "h2c"}}, "headers.Upgrade"),
    ({"headers": {"Webhook-Signature": "v1,x"}}, "headers.Webhook-Signature"),
    ({"headers": {"webhook-id": "msg_x"}}, "headers.webhook-id"),
    ({"headers": {"User-Agent": "me"}}, "headers.User-Agent"),
    ({"headers": {"X-A": "a\r\nX-Injected: 1"}}, "headers.X-A"),
    ({"headers": {"X-A": "a\x00"}}, "headers.X-A"),
    ({"headers": {"X-A": "x" * 1025}}, "headers.X-A"),
    ({"headers": {"Bad Name": "x"}}, "headers.Bad Name"),
    ({"headers": {"X-A": "1", "x-a": "2"}}, "headers.x-a"),
    ({"headers": {"X-A": 1}}, "headers.X-A"),
    ({"headers": {f"X-{i}": "v" for i in range(11)}}, "headers"),
    ({"headers": ["X-A: 1"]}, "headers"),
    ({"filters": {"tags": "vip"}}, "filters.tags"),
    ({"filters": {"tags": [""]}}, "filters.tags"),
    ({"filters": {"tags": ["t"] * 21}}, "filters.tags"),
    ({"filters": {"recipient_domains": [1]}}, "filters.recipient_domains"),
    ({"filters": {"user_variables": {"a": 1}}}, "filters.user_variables"),
    ({"filters": {"user_variables": {"a": "\x00"}}}, "filters.user_variables"),
    ({"filters": {"colour": ["red"]}}, "filters"),
    ({"filters": "vip"}, "filters"),
    ({"timeout_seconds": 0}, "timeout_seconds"),
    ({"timeout_seconds": 31}, "timeout_seconds"),
    ({"timeout_seconds": 2.5}, "timeout_seconds"),
    ({"timeout_seconds": True}, "timeout_seconds"),
    ({"timeout_seconds": "5"}, "timeout_seconds"),
    ({"retry_schedule": []}, "retry_schedule"),
    ({"retry_schedule": [0]}, "retry_schedule"),
    ({"retry_schedule": [-1, 5]}, "retry_schedule"),
    ({"retry_schedule": [1] * 21}, "retry_schedule"),
    ({"retry_schedule": [86_401]}, "retry_schedule"),
    ({"retry_schedule": ["1"]}, "retry_schedule"),
    ({"retry_schedule": 5}, "retry_schedule"),
    ({"rate_limit_per_second": 0}, "rate_limit_per_second"),
    ({"rate_limit_per_second": -3}, "rate_limit_per_second"),
    ({"rate_limit_per_second": 1.5}, "rate_limit_per_second"),
    ({"ordering": "lifo"}, "ordering"),
    ({"colour": "red"}, "body"),
    ([], "body"),
])
def test_bad_settings_name_their_field(body: Any, field: str) -> None:
    assert field in errors_of(body)


def test_a_partial_update_keeps_what_it_does_not_name_and_null_resets() -> None:
    first = parse_changes({"headers": {"X-Team": " ops "}, "timeout_seconds": 5, "retry_schedule": [1, 2.5],
                           "filters": {"tags": ["vip", "vip"], "recipient_domains": ["Example.ORG."]},
                           "rate_limit_per_second": 20, "ordering": "fifo"}, DEFAULT_SETTINGS)
    assert dict(first.headers) == {"X-Team": "ops"}
    assert first.filters.tags == ("vip",) and first.filters.recipient_domains == ("example.org",)
    assert first.retry_schedule == (1.0, 2.5) and first.ordering is Ordering.FIFO
    second = parse_changes({"timeout_seconds": None, "ordering": None}, first)
    assert second.timeout_seconds is None and second.ordering is Ordering.NONE
    assert second.headers == first.headers and second.retry_schedule == (1.0, 2.5)
    assert second.rate_limit_per_second == 20
    cleared = parse_changes({"headers": None, "filters": None, "retry_schedule": None,
                             "rate_limit_per_second": None}, second)
    assert settings_from_columns(**settings_to_columns(cleared)) is DEFAULT_SETTINGS
    assert settings_from_columns(**settings_to_columns(first)) == first  # stored and read back unchanged


def test_sensitive_names_and_masks() -> None:
    for name in ("Authorization", "proxy-authorization", "Cookie", "X-Api-Key", "X-Auth-Token", "X-Secret",
                 "X-Password", "X-Signature", "X-Hub-Auth"):
        assert is_sensitive(name), name
    for name in ("X-Team", "Accept", "X-Tenant"):
        assert not is_sensitive(name), name
    assert mask_value("Bearer abc.def") == f"Bearer {MASK}"
    assert mask_value("abc") == MASK and mask_value("") == MASK
    assert masked_headers({"Authorization": "Basic dXNlcg==", "X-Team": "ops", "X-Api-Key": "k1"}) == {
        "Authorization": f"Basic {MASK}", "X-Team": "ops", "X-Api-Key": MASK}
    assert masked_url("https://user:pw@hooks.example.com:8443/p?q=1") == f"https://user:{MASK}@hooks.example.com:8443/p?q=1"
    assert masked_url("https://user@hooks.example.com/p") == "https://user@hooks.example.com/p"
    assert masked_url("https://hooks.example.com/p?x=a@b") == "https://hooks.example.com/p?x=a@b"


def test_a_mask_sent_back_keeps_the_stored_secret() -> None:
    stored = {"Authorization": "Bearer s3cret", "X-Api-Key": "k1", "X-Team": "ops"}
    sent = {"authorization": f"Bearer {MASK}", "X-Api-Key": "k2", "X-Team": "ops", "X-New": MASK}
    assert unmask_headers(sent, stored) == {"authorization": "Bearer s3cret", "X-Api-Key": "k2", "X-Team": "ops",
                                            "X-New": MASK}
    current = parse_changes({"headers": stored}, DEFAULT_SETTINGS)
    again = parse_changes({"headers": masked_headers(stored)}, current, keep_masked=unmask_headers)
    assert dict(again.headers) == stored


def _filters(**given: Any) -> Any:
    return parse_changes({"filters": given}, DEFAULT_SETTINGS).filters


def test_filters_match_any_tag_any_domain_every_variable() -> None:
    event = {"tags": ["vip", "news"], "recipient-domain": "example.org",
             "user-variables": {"plan": "gold", "n": 1, "flag": True}}
    assert event_matches(_filters(tags=["x", "vip"]), event)
    assert not event_matches(_filters(tags=["x"]), event)
    assert event_matches(_filters(recipient_domains=["EXAMPLE.org"]), event)
    assert not event_matches(_filters(recipient_domains=["example.com"]), event)
    assert event_matches(_filters(user_variables={"plan": "gold", "n": "1", "flag": "true"}), event)
    assert not event_matches(_filters(user_variables={"plan": "gold", "region": "eu"}), event)
    assert not event_matches(_filters(tags=["vip"], recipient_domains=["example.com"]), event)  # every filter
    assert not event_matches(_filters(tags=["vip"]), {"tags": "vip"})  # malformed events match nothing
    assert not event_matches(_filters(user_variables={"a": "b"}), {})


def _hook(hook_id: int, url: str, domain_id: int | None = 7, **settings: Any) -> Webhook:
    own = parse_changes(settings, DEFAULT_SETTINGS) if settings else DEFAULT_SETTINGS
    return Webhook(id=hook_id, guid=f"g{hook_id}", account_id=1, domain_id=domain_id, event_type="delivered", url=url,
                   payload_format="mailgun", group_id=None, description=None, created_at=0.0, modified_at=0.0,
                   settings=own)


def test_targets_skip_filtered_subscriptions_before_deduplication() -> None:
    payload = orjson.dumps({"tags": ["news"], "recipient-domain": "example.com", "user-variables": {}}).decode()
    hooks = [_hook(1, "https://a.example/", filters={"tags": ["vip"]}),  # domain-level, filtered out
             _hook(2, "https://a.example/", domain_id=None),  # the same URL account-level: takes the event
             _hook(3, "https://b.example/", filters={"tags": ["news"]}),
             _hook(4, "https://c.example/", filters={"recipient_domains": ["example.org"]})]
    assert [t.webhook_id for t in targets_for("delivered", 1, 7, hooks, payload)] == [3, 2]
    plain = [_hook(5, "https://d.example/")]
    assert [t.webhook_id for t in targets_for("delivered", 1, 7, plain)] == [5]  # no filters: payload not needed


def test_static_headers_never_replace_ours_and_are_recorded_masked() -> None:
    ours = {"Content-Type": "application/json", "webhook-id": "msg_x", "webhook-signature": "v1,abc"}
    sent, recorded = with_static_headers(ours, {"X-Api-Key": "k1", "content-type": "text/plain", "X-Team": "ops"})
    assert sent == {**ours, "X-Api-Key": "k1", "X-Team": "ops"}
    assert recorded == {**ours, "X-Api-Key": MASK, "X-Team": "ops"}
    assert with_static_headers(ours, {}) == (ours, ours)
