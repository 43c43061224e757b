"""How the dashboard writes times, durations, JSON and secrets (the templates' filters, and flash messages)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from mailhooks.core.masking import masked_url


def ts(value: float | None) -> str:
    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def hm(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%H:%M")


def hms(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%H:%M:%S")


def ago(value: float | None) -> str:
    if value is None:
        return "—"
    seconds = max(0.0, time.time() - value)
    if seconds < 90:
        return f"{int(seconds)} s ago"
    if seconds < 5400:
        return f"{int(seconds // 60)} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def pretty(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: an event stored before ingest bounded it
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def datetime_local(value: float | None) -> str:
    """The value of an ``<input type="datetime-local">`` (UTC), empty for none."""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M") if value is not None else ""


def masked(key: str) -> str:
    return key[:4] + "•" * max(0, len(key) - 8) + key[-4:]


FILTERS: dict[str, Any] = {"ts": ts, "hm": hm, "hms": hms, "ago": ago, "ms": ms, "pretty": pretty,
                           "masked_url": masked_url}
