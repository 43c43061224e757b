"""The dashboard's pure parts, without a server: the last-hour chart's geometry, signed values, and reading
times and page numbers from the browser."""

from __future__ import annotations

import pytest

from mailhooks.api.ui import chart, inputs, signing
from mailhooks.core.errors import ValidationFailed
from mailhooks.db.dashboard import Minute

SECRET = b"k" * 32


def test_an_empty_hour_draws_nothing_and_scales_to_one() -> None:
    drawn = chart.last_hour([])
    assert drawn["bars"] == [] and drawn["line"] == ""
    assert (drawn["peak"], drawn["slowest"], drawn["ok"], drawn["failed"]) == (1, None, 0, 0)
    assert drawn["start"] is None and drawn["end"] is None


def test_bars_stack_failed_on_ok_scaled_to_the_busiest_minute() -> None:
    minutes = [Minute(start=0.0, ok=3, failed=1, avg_ms=50.0), Minute(start=60.0, ok=0, failed=0, avg_ms=None)]
    drawn = chart.last_hour(minutes)
    busy, idle = drawn["bars"]
    assert busy["x"] == 1.0 and busy["w"] == 298.0  # two minutes across 600 px, 2 px apart
    assert busy["ok_h"] == 105.0 and busy["ok_y"] == 35.0  # 3 of the peak 4, in 140 px
    assert busy["fail_h"] == 35.0 and busy["fail_y"] == 0.0  # stacked on top
    assert idle["ok_h"] == idle["fail_h"] == 0.0
    assert busy["label"] == "00:00 UTC: 3 ok, 1 failed, mean 50 ms"
    assert idle["label"] == "00:01 UTC: 0 ok, 0 failed"
    assert drawn["line"] == "150.0,7.0"  # only minutes with a mean; the slowest one at 95 % of the height
    assert (drawn["peak"], drawn["slowest"], drawn["ok"], drawn["failed"]) == (4, 50.0, 3, 1)
    assert (drawn["start"], drawn["end"]) == (0.0, 120.0)


def test_a_sealed_value_opens_only_for_its_purpose_and_unchanged() -> None:
    token = signing.seal(SECRET, "flash", {"m": "hello", "k": "ok"})
    assert signing.unseal(SECRET, "flash", token) == {"m": "hello", "k": "ok"}
    assert signing.unseal(SECRET, "session", token) is None
    assert signing.unseal(b"x" * 32, "flash", token) is None
    body, _, mac = token.partition(".")
    assert signing.unseal(SECRET, "flash", body[:-2] + "AA." + mac) is None
    for junk in (None, "", "no-dot", "a.b", "." * 5000, "!!!." + mac):
        assert signing.unseal(SECRET, "flash", junk) is None


@pytest.mark.parametrize(("value", "expected"), [
    ("", None), ("0", 0.0), ("1700000000.5", 1700000000.5), ("2024-01-02T03:04", 1704164640.0),
])
def test_times_read_as_utc_or_epoch_seconds(value: str, expected: float | None) -> None:
    assert inputs.epoch(value, "since") == expected


@pytest.mark.parametrize("value", ["-1", "nan", "1e400", "10000-01-01T00:00", "abc", "\x00", "9" * 30])
def test_times_outside_the_calendar_name_the_field(value: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        inputs.epoch(value, "until")
    assert list(raised.value.errors) == ["until"]
    assert raised.value.message.startswith("'until' must be a date and time (UTC) between 1970 and 9999")


def test_pager_keeps_the_page_within_the_pages() -> None:
    assert inputs.pager(1, 0) == {"page": 1, "pages": 1, "total": 0}
    assert inputs.pager(9, 41) == {"page": 3, "pages": 3, "total": 41}
    assert inputs.offset_of(3) == 40
