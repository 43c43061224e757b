"""The deliveries list (``/ui/deliveries``): filtered by domain, status, event type, webhook and time, paged
by id cursors; and "recover", which queues a domain's failed deliveries since a time again."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.ui import deps
from mailhooks.api.ui.formatting import datetime_local, ts
from mailhooks.api.ui.inputs import epoch, query_id
from mailhooks.api.ui.rendering import redirect, render
from mailhooks.api.ui.session import PostedForm, SignedIn
from mailhooks.api.ui.site import PREFIX
from mailhooks.core.deliveries import DeliveryStatus
from mailhooks.core.errors import NotFound
from mailhooks.core.event_types import CANONICAL
from mailhooks.db.dashboard import DeliveryFilter

PAGE = f"{PREFIX}/deliveries"
PAGE_SIZE = 25
DOMAIN_CHOICES = 200  # the domain filter's list

router = APIRouter()


@router.get("/deliveries")
async def deliveries(request: Request, session: SignedIn, subscriptions: deps.SubscriptionsDep,
                     dash: deps.DashboardDep) -> Response:
    q = request.query_params
    account = session.account
    domain_name = q.get("domain", "").strip()
    domain = await subscriptions.domain(account, domain_name) if domain_name else None
    status = q.get("status", "")
    event_type = q.get("event", "")
    since, until = epoch(q.get("since", ""), "since"), epoch(q.get("until", ""), "until")
    webhook = q.get("webhook", "")
    if not webhook.isprintable() or len(webhook) > 64:  # no guid is (and PostgreSQL refuses NUL in text)
        raise NotFound("Webhook not found", what="webhook")
    flt = DeliveryFilter(
        domain_id=domain.id if domain else None,
        status=status if status in tuple(DeliveryStatus) else None,
        event_type=event_type if event_type in CANONICAL else None,
        webhook_guid=webhook or None,
        since=since, until=until,
    )
    page = await dash.deliveries_page(account.id, flt, before=query_id(request, "before"),
                                      after=query_id(request, "after"), limit=PAGE_SIZE)
    filters = {k: v for k, v in {"domain": domain.name if domain else "", "status": flt.status or "",
                                 "event": flt.event_type or "", "webhook": flt.webhook_guid or "",
                                 "since": datetime_local(since), "until": datetime_local(until)}.items() if v}
    domains, _ = await dash.domains_page(account.id, 0, DOMAIN_CHOICES)
    return render(
        request, "deliveries.html", session=session, nav="deliveries", page=page, filters=filters,
        statuses=tuple(DeliveryStatus), types=CANONICAL, domains=domains,
        webhooks=await dash.webhook_choices(account.id),
        newer_url=f"{PAGE}?{urlencode({**filters, 'after': page.newer})}" if page.newer else None,
        older_url=f"{PAGE}?{urlencode({**filters, 'before': page.older})}" if page.older else None,
        first_url=f"{PAGE}?{urlencode(filters)}", recover_since=datetime_local(time.time() - 24 * 3600),
    )


@router.post("/deliveries/recover")
async def recover(request: Request, posted: PostedForm, subscriptions: deps.SubscriptionsDep,
                  deliveries: deps.DeliveriesDep) -> Response:
    domain = await subscriptions.domain(posted.account, posted.text("domain"))
    since = epoch(posted.text("since"), "since")
    to = f"{PAGE}?{urlencode({'domain': domain.name})}"
    if since is None:
        return redirect(request, to, "Give the time to recover failed deliveries from.", "error")
    count = await deliveries.recover(posted.account.id, domain.id, since)
    if count:
        deps.wake_dispatcher(request)
    return redirect(request, to, f"{count} failed deliver{'y' if count == 1 else 'ies'} of {domain.name} "
                                 f"since {ts(since)} UTC queued again.")
