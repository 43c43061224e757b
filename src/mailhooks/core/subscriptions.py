"""A subscription's own settings (one webhook row = one subscription), as plain typed values.

Every setting is optional; a subscription that sets none behaves exactly as before the settings existed,
and the claim path builds no new objects for it (``DEFAULT_SETTINGS`` is shared). Parsing and
validation of what a client sends live here too, so every edge (native API, dashboard) applies one rule.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


class Ordering(enum.StrEnum):
    """``none``: deliveries to the subscription run concurrently (the default). ``fifo``: one at a time,
    in event order; the next waits until the current one is finished."""

    NONE = "none"
    FIFO = "fifo"


@dataclass(frozen=True, slots=True)
class Filters:
    """An event reaches the subscription only if it matches every filter that is set (empty = unset)."""

    tags: tuple[str, ...] = ()  # any of
    recipient_domains: tuple[str, ...] = ()  # any of, lower-case
    user_variables: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # all equal

    @property
    def empty(self) -> bool:
        return not (self.tags or self.recipient_domains or self.user_variables)


NO_FILTERS = Filters()


@dataclass(frozen=True, slots=True)
class SubscriptionSettings:
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    filters: Filters = NO_FILTERS
    rate_limit_per_second: int | None = None  # None: no limit of its own
    timeout_seconds: int | None = None  # None: the installation's timeout
    retry_schedule: tuple[float, ...] | None = None  # None: the installation's schedule
    ordering: Ordering = Ordering.NONE


DEFAULT_SETTINGS = SubscriptionSettings()


def settings_from_columns(headers: str | None, filters: str | None, rate_limit_per_second: int | None,
                          timeout_seconds: int | None, retry_schedule: str | None,
                          ordering: str | None) -> SubscriptionSettings:
    """The settings as stored (JSON text columns, already validated when written). The common case, a
    subscription with no settings, returns the shared default without parsing anything."""
    if (headers is None and filters is None and rate_limit_per_second is None and timeout_seconds is None
            and retry_schedule is None and (ordering is None or ordering == Ordering.NONE)):
        return DEFAULT_SETTINGS
    return SubscriptionSettings(
        headers=MappingProxyType(dict(json.loads(headers))) if headers else MappingProxyType({}),
        filters=_filters_from_json(filters),
        rate_limit_per_second=rate_limit_per_second,
        timeout_seconds=timeout_seconds,
        retry_schedule=tuple(float(s) for s in json.loads(retry_schedule)) if retry_schedule else None,
        ordering=Ordering(ordering or Ordering.NONE),
    )


def _filters_from_json(text: str | None) -> Filters:
    if not text:
        return NO_FILTERS
    data: dict[str, Any] = json.loads(text)
    return Filters(
        tags=tuple(data.get("tags") or ()),
        recipient_domains=tuple(data.get("recipient_domains") or ()),
        user_variables=MappingProxyType(dict(data.get("user_variables") or {})),
    )


def filters_to_json(filters: Filters) -> str | None:
    """The stored form (``None`` when no filter is set)."""
    if filters.empty:
        return None
    return json.dumps({"tags": list(filters.tags), "recipient_domains": list(filters.recipient_domains),
                       "user_variables": dict(filters.user_variables)}, separators=(",", ":"))


def schedule_to_json(schedule: Sequence[float] | None) -> str | None:
    return None if schedule is None else json.dumps(list(schedule))
