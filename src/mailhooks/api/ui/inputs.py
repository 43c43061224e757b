"""Reading what the browser sends: path parameters, page numbers, cursors, times and event types. Anything
the dashboard cannot use is a 4xx page naming the field, never a 500."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path
from starlette.requests import Request

from mailhooks.core.errors import ValidationFailed
from mailhooks.core.event_types import CANONICAL, parse_type

PAGE_SIZE = 20
MAX_ID = 2**63 - 1

# Path parameters (FastAPI copies an Annotated parameter per route, so one declaration serves them all).
DomainName = Annotated[str, Path(max_length=253)]
Guid = Annotated[str, Path(max_length=64)]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID)]
KeyPrefix = Annotated[str, Path(max_length=16)]

# The times the dashboard can show and store: from the epoch to the end of year 9999 (``datetime``'s
# calendar). Beyond it, formatting the time back (and PostgreSQL's bigint/float handling) failed with a 500.
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def page_number(request: Request) -> int:
    """``?page=``, 1 when absent or unreadable."""
    value = request.query_params.get("page")
    return int(value) if value and value.isdigit() and 0 < len(value) < 7 and int(value) > 0 else 1


def offset_of(page: int, size: int = PAGE_SIZE) -> int:
    return (page - 1) * size


def pager(page: int, total: int, size: int = PAGE_SIZE) -> dict[str, int]:
    pages = max(1, math.ceil(total / size))
    return {"page": min(page, pages), "pages": pages, "total": total}


def query_id(request: Request, name: str) -> int | None:
    """A row-id cursor from the query string; ``None`` when absent or not one."""
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() and len(value) < 19 else None


def epoch(value: str, field: str) -> float | None:
    """A ``datetime-local`` value (read as UTC) or epoch seconds; ``None`` when empty. Anything else
    (unreadable, NUL, before 1970 or past 9999) is a 400 page naming the field."""
    if not value:
        return None
    try:
        seconds = float(value) if value.replace(".", "", 1).isdigit() else \
            datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
    except (ValueError, OverflowError):
        seconds = math.nan
    if not 0 <= seconds <= LATEST:  # NaN fails this too
        raise ValidationFailed.field(field, f"'{field}' must be a date and time (UTC) between 1970 and 9999, "
                                            "or epoch seconds.")
    return seconds


def event_type(value: str, allowed: tuple[str, ...] = CANONICAL) -> str:
    if parse_type(value, allowed) is None:
        raise ValidationFailed.field("event_type", f"Choose an event type: {', '.join(allowed)}.")
    return value
