"""A subscription's own settings (one webhook row = one subscription), as plain typed values.

Every setting is optional; a subscription that sets none behaves exactly as before the settings existed,
and the claim path builds no new objects for it (``DEFAULT_SETTINGS`` is shared). Parsing and
validation of what a client sends live here too, so every edge (native API, dashboard) applies one rule.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from mailhooks.core.errors import ValidationFailed


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
    # True: only events whose recipient was on a suppression list of the domain; False: only the others.
    suppressed: bool | None = None

    @property
    def empty(self) -> bool:
        return not (self.tags or self.recipient_domains or self.user_variables) and self.suppressed is None


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
        filters=filters_from_json(filters),
        rate_limit_per_second=rate_limit_per_second,
        timeout_seconds=timeout_seconds,
        retry_schedule=tuple(float(s) for s in json.loads(retry_schedule)) if retry_schedule else None,
        ordering=Ordering(ordering or Ordering.NONE),
    )


def filters_from_json(text: str | None) -> Filters:
    """The ``filters`` column as stored (validated when written)."""
    if not text:
        return NO_FILTERS
    data: dict[str, Any] = json.loads(text)
    return Filters(
        tags=tuple(data.get("tags") or ()),
        recipient_domains=tuple(data.get("recipient_domains") or ()),
        user_variables=MappingProxyType(dict(data.get("user_variables") or {})),
        suppressed=data.get("suppressed"),
    )


def filters_as_dict(filters: Filters) -> dict[str, Any]:
    """The filters as plain JSON values: the stored form and what the native API shows are the same."""
    return {"tags": list(filters.tags), "recipient_domains": list(filters.recipient_domains),
            "user_variables": dict(filters.user_variables), "suppressed": filters.suppressed}


def filters_to_json(filters: Filters) -> str | None:
    """The stored form (``None`` when no filter is set)."""
    if filters.empty:
        return None
    return json.dumps(filters_as_dict(filters), separators=(",", ":"))


def schedule_to_json(schedule: Sequence[float] | None) -> str | None:
    return None if schedule is None else json.dumps(list(schedule))


# ---------------------------------------------------------------------- validation (every edge)
# One rule for the native API and the dashboard: ``parse_changes`` reads a partial update (a key present
# replaces that setting, ``null`` resets it) and raises ``ValidationFailed`` naming each bad field.

MAX_HEADERS = 10
MAX_HEADER_NAME = 64
MAX_HEADER_VALUE = 1024
MAX_FILTER_ITEMS = 20
MAX_FILTER_TEXT = 253
MAX_USER_VARIABLES = 10
MAX_TIMEOUT_SECONDS = 30
MAX_SCHEDULE_LENGTH = 20
MAX_SCHEDULE_DELAY = 86_400.0  # one day between two attempts at most
MAX_RATE_PER_SECOND = 10_000
SETTING_NAMES = ("headers", "filters", "rate_limit_per_second", "timeout_seconds", "retry_schedule", "ordering")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")  # visible ASCII, space and tab: no CR, LF, NUL
# Names the receiver must get from us alone: framing and hop-by-hop headers (a static value would break
# the request), and what we sign with or identify ourselves by (``core.payloads.PreparedEvent.render``).
RESERVED_HEADERS = frozenset((
    "host", "content-length", "content-type", "content-encoding", "transfer-encoding", "connection",
    "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect", "proxy-authenticate",
    "user-agent",
))
RESERVED_PREFIXES = ("webhook-",)  # webhook-id, webhook-timestamp, webhook-signature (Standard Webhooks)


def _text(value: object) -> bool:
    return isinstance(value, str) and "\x00" not in value


def _check_headers(value: object, errors: dict[str, list[str]]) -> dict[str, str]:
    if not isinstance(value, dict):
        errors.setdefault("headers", []).append("The headers must be an object of header names to values.")
        return {}
    if len(value) > MAX_HEADERS:
        errors.setdefault("headers", []).append(f"At most {MAX_HEADERS} headers.")
        return {}
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name, header_value in value.items():
        key = f"headers.{name}"
        lower = name.lower()
        if not _TOKEN.match(name) or len(name) > MAX_HEADER_NAME:
            errors.setdefault(key, []).append(
                f"A header name is 1 to {MAX_HEADER_NAME} letters, digits and !#$%&'*+.^_`|~- characters.")
        elif lower in RESERVED_HEADERS or lower.startswith(RESERVED_PREFIXES):
            errors.setdefault(key, []).append(f"The {name} header is set by mailhooks and cannot be replaced.")
        elif lower in seen:
            errors.setdefault(key, []).append(f"The {name} header is given twice (names ignore case).")
        elif not isinstance(header_value, str) or not _HEADER_VALUE.match(header_value) \
                or len(header_value) > MAX_HEADER_VALUE:
            errors.setdefault(key, []).append(
                f"A header value is text of at most {MAX_HEADER_VALUE} printable ASCII characters (no CR, LF, NUL).")
        else:
            seen.add(lower)
            out[name] = header_value.strip()
    return out


def _check_list(value: object, field: str, errors: dict[str, list[str]]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_FILTER_ITEMS \
            or not all(_text(item) and 0 < len(item.strip()) <= MAX_FILTER_TEXT for item in value):
        errors.setdefault(field, []).append(
            f"A list of at most {MAX_FILTER_ITEMS} non-empty strings of at most {MAX_FILTER_TEXT} characters.")
        return ()
    return tuple(dict.fromkeys(item.strip() for item in value))


def _check_filters(value: object, errors: dict[str, list[str]]) -> Filters:
    if not isinstance(value, dict):
        errors.setdefault("filters", []).append(
            "The filters must be an object with tags, recipient_domains, user_variables and suppressed.")
        return NO_FILTERS
    unknown = set(value) - {"tags", "recipient_domains", "user_variables", "suppressed"}
    if unknown:
        errors.setdefault("filters", []).append(f"Unknown filters: {', '.join(sorted(map(str, unknown)))}.")
    tags = _check_list(value.get("tags"), "filters.tags", errors)
    domains = _check_list(value.get("recipient_domains"), "filters.recipient_domains", errors)
    variables = value.get("user_variables") or {}
    if not isinstance(variables, dict) or len(variables) > MAX_USER_VARIABLES or not all(
            _text(k) and 0 < len(k) <= MAX_FILTER_TEXT and _text(v) and len(v) <= MAX_FILTER_TEXT
            for k, v in variables.items()):
        errors.setdefault("filters.user_variables", []).append(
            f"An object of at most {MAX_USER_VARIABLES} names to string values, each of at most "
            f"{MAX_FILTER_TEXT} characters.")
        variables = {}
    suppressed = value.get("suppressed")
    if suppressed is not None and not isinstance(suppressed, bool):
        errors.setdefault("filters.suppressed", []).append("true, false or null.")
        suppressed = None
    return Filters(tags=tags, recipient_domains=tuple(d.lower().rstrip(".") for d in domains),
                   user_variables=MappingProxyType(dict(variables)), suppressed=suppressed)


def _positive_int(value: object, field: str, top: int, errors: dict[str, list[str]]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        errors.setdefault(field, []).append(f"The {field} must be a whole number from 1 to {top}, or null.")
        return None
    return value


def _check_schedule(value: object, errors: dict[str, list[str]]) -> tuple[float, ...] | None:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_SCHEDULE_LENGTH or not all(
            not isinstance(s, bool) and isinstance(s, int | float) and 0 < s <= MAX_SCHEDULE_DELAY for s in value):
        errors.setdefault("retry_schedule", []).append(
            f"The retry_schedule must be a list of 1 to {MAX_SCHEDULE_LENGTH} delays in seconds, each above 0 "
            f"and at most {MAX_SCHEDULE_DELAY:g}, or null.")
        return None
    return tuple(float(s) for s in value)


def parse_changes(body: object, current: SubscriptionSettings,
                  keep_masked: Callable[[Mapping[str, str], Mapping[str, str]], dict[str, str]] | None = None
                  ) -> SubscriptionSettings:
    """``current`` with the settings present in ``body`` replaced (``null``: back to the default).

    ``keep_masked(sent, stored)`` maps header values a client sent back masked to the stored ones
    (``core.masking.unmask_headers``), so a read-modify-write does not overwrite a secret with its mask.
    """
    if not isinstance(body, dict):
        raise ValidationFailed.field("body", "The body must be a JSON object of settings.")
    errors: dict[str, list[str]] = {}
    unknown = sorted(str(k) for k in body if k not in SETTING_NAMES)
    if unknown:
        errors["body"] = [f"Unknown settings: {', '.join(unknown)}. Known: {', '.join(SETTING_NAMES)}."]
    changes: dict[str, Any] = {}
    if "headers" in body:
        headers = _check_headers(body["headers"] or {}, errors)
        if keep_masked is not None:
            headers = keep_masked(headers, current.headers)
        changes["headers"] = MappingProxyType(headers)
    if "filters" in body:
        changes["filters"] = NO_FILTERS if body["filters"] is None else _check_filters(body["filters"], errors)
    for name, top in (("rate_limit_per_second", MAX_RATE_PER_SECOND), ("timeout_seconds", MAX_TIMEOUT_SECONDS)):
        if name in body:
            changes[name] = None if body[name] is None else _positive_int(body[name], name, top, errors)
    if "retry_schedule" in body:
        changes["retry_schedule"] = None if body["retry_schedule"] is None else _check_schedule(
            body["retry_schedule"], errors)
    if "ordering" in body:
        value = body["ordering"]
        if value is None:
            changes["ordering"] = Ordering.NONE
        elif value in tuple(Ordering):
            changes["ordering"] = Ordering(value)
        else:
            errors.setdefault("ordering", []).append('The ordering must be "none" or "fifo".')
    if errors:
        raise ValidationFailed(errors)
    return replace(current, **changes)


def settings_to_columns(settings: SubscriptionSettings) -> dict[str, Any]:
    """The stored form of ``settings``: the webhooks columns, ``NULL`` for every unset one (``ordering`` is
    never null: ``none`` is its default)."""
    return {
        "headers": json.dumps(dict(settings.headers), separators=(",", ":")) if settings.headers else None,
        "filters": filters_to_json(settings.filters),
        "rate_limit_per_second": settings.rate_limit_per_second,
        "timeout_seconds": settings.timeout_seconds,
        "retry_schedule": schedule_to_json(settings.retry_schedule),
        "ordering": settings.ordering.value,
    }


def settings_to_json(settings: SubscriptionSettings, headers: Mapping[str, str]) -> dict[str, Any]:
    """The settings as the native API shows them; ``headers`` as the caller may see them (masked)."""
    return {
        "headers": dict(headers),
        "filters": filters_as_dict(settings.filters),
        "rate_limit_per_second": settings.rate_limit_per_second,
        "timeout_seconds": settings.timeout_seconds,
        "retry_schedule": None if settings.retry_schedule is None else [
            int(s) if s.is_integer() else s for s in settings.retry_schedule],
        "ordering": settings.ordering.value,
    }


# ---------------------------------------------------------------------- filters at intake
def event_matches(filters: Filters, event: Mapping[str, Any]) -> bool:
    """Whether canonical event-data ``event`` passes ``filters``: any tag, any recipient domain, every
    user variable equal (compared as text: ``1`` equals ``"1"``), and the recipient suppressed or not
    (``"suppressed": true``, which intake writes into the event data: ``core.suppressions``)."""
    if filters.suppressed is not None and bool(event.get("suppressed")) is not filters.suppressed:
        return False
    if filters.tags:
        tags = event.get("tags")
        if not isinstance(tags, list) or not any(isinstance(t, str) and t in filters.tags for t in tags):
            return False
    if filters.recipient_domains:
        domain = event.get("recipient-domain")
        if not isinstance(domain, str) or domain.lower().rstrip(".") not in filters.recipient_domains:
            return False
    if filters.user_variables:
        variables = event.get("user-variables")
        if not isinstance(variables, dict):
            return False
        for name, expected in filters.user_variables.items():
            value = variables.get(name)
            if value is None or isinstance(value, dict | list) or _as_text(value) != expected:
                return False
    return True


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)
