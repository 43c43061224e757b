"""A subscription's settings page (``/ui/subscriptions/{guid}``), linked from the domain page and the account
webhooks page: static headers (sensitive values shown masked), filters, timeout, retry schedule, rate limit
and ordering, shown and edited with the rules of the native API (``core.subscriptions.parse_changes``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.dialects import Dialect
from mailhooks.api.ui import deps
from mailhooks.api.ui.errors import form_error
from mailhooks.api.ui.inputs import Guid
from mailhooks.api.ui.rendering import redirect, render
from mailhooks.api.ui.session import Posted, PostedForm, SignedIn
from mailhooks.api.ui.site import PREFIX
from mailhooks.core.errors import CoreError, NotFound, ValidationFailed
from mailhooks.core.masking import masked_headers, masked_url, unmask_headers
from mailhooks.core.subscriptions import Ordering, SubscriptionSettings, parse_changes
from mailhooks.db.subscriptions import change_settings, get_subscription

router = APIRouter()


def _page(guid: str) -> str:
    return f"{PREFIX}/subscriptions/{guid}"


def _lines(pairs: dict[str, str], separator: str) -> str:
    return "\n".join(f"{name}{separator}{value}" for name, value in pairs.items())


def _pairs(text: str, separator: str, field: str) -> dict[str, str]:
    """``Name: value`` lines (``separator`` ": " or "="), blank lines skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, found, value = line.partition(separator.strip())
        if not found:
            raise ValidationFailed.field(field, f"Write one '{separator.strip()}' per line: name{separator}value.")
        out[name.strip()] = value.strip()
    return out


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]


def _number(text: str, field: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > 9:
        raise ValidationFailed.field(field, f"The {field} must be a whole number, or empty.")
    return int(text)


def _schedule(text: str) -> list[float] | None:
    items = _items(text)
    if not items:
        return None
    try:
        return [float(item) for item in items]
    except ValueError as exc:
        raise ValidationFailed.field("retry_schedule", "The retry schedule is seconds separated by commas.") from exc


def form_body(posted: Posted) -> dict[str, Any]:
    """The form as the body of ``PATCH /v1/subscriptions/{guid}``: every setting given (empty: the default)."""
    return {
        "headers": _pairs(posted.text("headers"), ": ", "headers"),
        "filters": {"tags": _items(posted.text("tags")), "recipient_domains": _items(posted.text("recipient_domains")),
                    "user_variables": _pairs(posted.text("user_variables"), "=", "user_variables"),
                    "suppressed": {"yes": True, "no": False}.get(posted.text("suppressed"))},
        "timeout_seconds": _number(posted.text("timeout_seconds"), "timeout_seconds"),
        "retry_schedule": _schedule(posted.text("retry_schedule")),
        "rate_limit_per_second": _number(posted.text("rate_limit_per_second"), "rate_limit_per_second"),
        "ordering": posted.text("ordering") or None,
    }


@router.get("/subscriptions/{guid}")
async def settings_page(request: Request, guid: Guid, session: SignedIn, store: deps.StoreDep) -> Response:
    found = await get_subscription(store, session.account.id, guid)
    if found is None:
        raise NotFound("Subscription not found", what="webhook")
    hook, domain = found
    own = hook.settings
    back = f"{PREFIX}/domains/{domain}" if domain is not None else f"{PREFIX}/webhooks"
    return render(request, "subscription_settings.html", session=session, nav="overview", hook=hook, domain=domain,
                  url=masked_url(hook.url), back=back, orderings=tuple(Ordering),
                  headers=_lines(masked_headers(own.headers), ": "),
                  tags=", ".join(own.filters.tags), recipient_domains=", ".join(own.filters.recipient_domains),
                  user_variables=_lines(dict(own.filters.user_variables), "="),
                  schedule=", ".join(f"{s:g}" for s in own.retry_schedule or ()), own=own)


@router.post("/subscriptions/{guid}")
async def save_settings(request: Request, guid: Guid, posted: PostedForm, store: deps.StoreDep) -> Response:
    try:
        body = form_body(posted)

        def change(current: SubscriptionSettings) -> SubscriptionSettings:
            return parse_changes(body, current, keep_masked=unmask_headers)

        found = await change_settings(store, posted.account.id, guid, change)
    except CoreError as exc:
        return form_error(request, exc, _page(guid), Dialect.NATIVE)
    if found is None:
        raise NotFound("Subscription not found", what="webhook")
    return redirect(request, _page(guid), f"Settings saved: {found[0].event_type} → {masked_url(found[0].url)}")
