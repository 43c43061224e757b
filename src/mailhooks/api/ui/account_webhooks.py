"""Account-level webhooks (``/ui/webhooks``): one URL for several event types across all the account's
domains, shown and edited as a group of rows (one per type) that share a group id."""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.dialects import Dialect
from mailhooks.api.ui import deps, inputs
from mailhooks.api.ui.errors import form_error
from mailhooks.api.ui.inputs import Guid
from mailhooks.api.ui.rendering import redirect, render
from mailhooks.api.ui.samples import send_test
from mailhooks.api.ui.session import Posted, PostedForm, SignedIn
from mailhooks.api.ui.site import PREFIX
from mailhooks.core.errors import CoreError, ValidationFailed
from mailhooks.core.event_types import MAILGUN_TYPES
from mailhooks.core.masking import masked_url, unmasked_url
from mailhooks.core.models import Account, Domain, Webhook
from mailhooks.db.dashboard import Dashboard

PAGE = f"{PREFIX}/webhooks"

router = APIRouter()


@dataclass(frozen=True)
class Group:
    group_id: str
    url: str
    description: str | None
    rows: list[Webhook]

    @classmethod
    def of(cls, rows: list[Webhook]) -> Group:
        return cls(rows[0].group_id or "", rows[0].url, rows[0].description, rows)

    @property
    def types(self) -> list[str]:
        return [row.event_type for row in self.rows]

    @property
    def disabled(self) -> list[Webhook]:
        return [row for row in self.rows if row.disabled_at is not None]

    @property
    def failing_since(self) -> float | None:
        times = [row.failing_since for row in self.rows if row.failing_since is not None]
        return min(times) if times else None


def _types_of(posted: Posted) -> list[str]:
    types = posted.texts("event_types")
    if not types:
        raise ValidationFailed.field("event_types", "Choose at least one event type.")
    return [inputs.event_type(value, MAILGUN_TYPES) for value in types]


async def _first_domain(dash: Dashboard, account: Account) -> Domain:
    domains, _ = await dash.domains_page(account.id, 0, 1)
    if domains:
        return domains[0]
    # An account without domains can still try its account-level webhooks with a sample domain.
    return Domain(id=0, guid="", name="example.com", account_id=account.id, secret="", created_at=time.time())


@router.get("/webhooks")
async def account_webhooks(request: Request, session: SignedIn, subscriptions: deps.SubscriptionsDep) -> Response:
    # Bounded like a domain's list (3 URLs per type), so shown whole.
    groups = [Group.of(rows) for rows in await subscriptions.account_groups(session.account)]
    return render(request, "account_webhooks.html", session=session, nav="webhooks", groups=groups,
                  types=MAILGUN_TYPES)


@router.post("/webhooks")
async def create_account_webhook(request: Request, posted: PostedForm,
                                 subscriptions: deps.SubscriptionsDep) -> Response:
    try:
        rows = await subscriptions.create_account_webhook(posted.account, posted.text("url"), _types_of(posted),
                                                          posted.text("description") or None)
    except CoreError as exc:
        return form_error(request, exc, PAGE, Dialect.MAILGUN)
    return redirect(request, PAGE, f"Account-level webhook created: {masked_url(rows[0].url)}")


@router.get("/webhooks/{group_id}")
async def edit_account_webhook_form(request: Request, group_id: Guid, session: SignedIn,
                                    subscriptions: deps.SubscriptionsDep) -> Response:
    group = Group.of(await subscriptions.account_group(session.account, group_id))
    return render(request, "account_webhook_edit.html", session=session, nav="webhooks", group=group,
                  types=MAILGUN_TYPES)


@router.post("/webhooks/{group_id}")
async def edit_account_webhook(request: Request, group_id: Guid, posted: PostedForm,
                               subscriptions: deps.SubscriptionsDep) -> Response:
    current = await subscriptions.account_group(posted.account, group_id)  # another account's: a 404 page
    try:
        rows = await subscriptions.replace_account_webhook(posted.account, group_id,
                                                           unmasked_url(posted.text("url"), current[0].url),
                                                           _types_of(posted), posted.text("description"))
    except CoreError as exc:
        return form_error(request, exc, f"{PAGE}/{group_id}", Dialect.MAILGUN)
    return redirect(request, PAGE, f"Account-level webhook updated: {masked_url(rows[0].url)}")


@router.post("/webhooks/{group_id}/delete")
async def delete_account_webhook(request: Request, group_id: Guid, posted: PostedForm,
                                 subscriptions: deps.SubscriptionsDep) -> Response:
    group = Group.of(await subscriptions.account_group(posted.account, group_id))
    await subscriptions.delete_account_webhooks(posted.account, [group_id])
    return redirect(request, PAGE, f"Account-level webhook deleted: {masked_url(group.url)}")


@router.post("/webhooks/{group_id}/test")
async def test_account_webhook(request: Request, group_id: Guid, posted: PostedForm,
                               subscriptions: deps.SubscriptionsDep, dash: deps.DashboardDep,
                               svc: deps.ServicesDep) -> Response:
    group = Group.of(await subscriptions.account_group(posted.account, group_id))
    domain = await _first_domain(dash, posted.account)
    message, kind = await send_test(svc, posted.account, domain, group.types[0], group.url,
                                    group.rows[0].payload_format)
    return redirect(request, PAGE, message, kind)


@router.post("/webhooks/{group_id}/enable")
async def enable_account_webhook(request: Request, group_id: Guid, posted: PostedForm,
                                 subscriptions: deps.SubscriptionsDep, deliveries: deps.DeliveriesDep) -> Response:
    group = Group.of(await subscriptions.account_group(posted.account, group_id))
    for row in group.disabled:
        await deliveries.enable_webhook(posted.account.id, row.guid)
    return redirect(request, PAGE, f"Account-level webhook re-enabled: {masked_url(group.url)}")
