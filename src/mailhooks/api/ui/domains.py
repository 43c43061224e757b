"""A domain's page: its health and its webhooks (one row per event type and URL), created, edited, deleted,
tried with a test event and re-enabled from here."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.dialects import Dialect
from mailhooks.api.ui import deps, inputs
from mailhooks.api.ui.errors import form_error
from mailhooks.api.ui.inputs import DomainName, Guid
from mailhooks.api.ui.rendering import redirect, render
from mailhooks.api.ui.samples import send_test
from mailhooks.api.ui.session import PostedForm, SignedIn
from mailhooks.api.ui.site import PREFIX
from mailhooks.core.errors import CoreError, ValidationFailed
from mailhooks.core.event_types import CANONICAL
from mailhooks.core.masking import masked_url, unmasked_url
from mailhooks.core.models import Domain
from mailhooks.core.payloads import PayloadFormat

PAYLOAD_FORMATS = (PayloadFormat.MAILGUN, PayloadFormat.KIRIM)  # operational ones have their own API

router = APIRouter()


def _domain_path(domain: Domain) -> str:
    return f"{PREFIX}/domains/{domain.name}"


@router.get("/domains/{name}")
async def domain_page(request: Request, name: DomainName, session: SignedIn, subscriptions: deps.SubscriptionsDep,
                      store: deps.StoreDep, dash: deps.DashboardDep) -> Response:
    domain = await subscriptions.domain(session.account, name)
    # A domain has at most 3 URLs x 13 event types: the rules bound this list, no paging needed.
    rows = await store.list_webhooks(session.account.id, domain.id)
    health = (await dash.health(session.account.id, [domain.id]))[domain.id]
    return render(request, "domain.html", session=session, nav="overview", domain=domain, rows=rows, health=health,
                  types=CANONICAL, formats=PAYLOAD_FORMATS)


@router.post("/domains/{name}/webhooks")
async def create_domain_webhook(request: Request, name: DomainName, posted: PostedForm,
                                subscriptions: deps.SubscriptionsDep) -> Response:
    domain = await subscriptions.domain(posted.account, name)
    try:
        event_type = inputs.event_type(posted.text("event_type"))
        payload_format = posted.text("payload_format") or PayloadFormat.MAILGUN
        if payload_format not in PAYLOAD_FORMATS:
            raise ValidationFailed.field("payload_format", "Choose mailgun or kirim.")
        row = await subscriptions.create_row(posted.account, domain, event_type, posted.text("url"),
                                                 PayloadFormat(payload_format))
    except CoreError as exc:
        return form_error(request, exc, _domain_path(domain), Dialect.KIRIM)
    return redirect(request, _domain_path(domain), f"Webhook created: {row.event_type} → {masked_url(row.url)}")


@router.get("/domains/{name}/webhooks/{guid}")
async def edit_domain_webhook_form(request: Request, name: DomainName, guid: Guid, session: SignedIn,
                                   subscriptions: deps.SubscriptionsDep) -> Response:
    domain = await subscriptions.domain(session.account, name)
    row = await subscriptions.get_row(session.account, domain, guid)
    return render(request, "webhook_edit.html", session=session, nav="overview", domain=domain, row=row,
                  types=CANONICAL, action=f"{_domain_path(domain)}/webhooks/{row.guid}", back=_domain_path(domain))


@router.post("/domains/{name}/webhooks/{guid}")
async def edit_domain_webhook(request: Request, name: DomainName, guid: Guid, posted: PostedForm,
                              subscriptions: deps.SubscriptionsDep) -> Response:
    domain = await subscriptions.domain(posted.account, name)
    current = await subscriptions.get_row(posted.account, domain, guid)
    try:
        row = await subscriptions.update_row(posted.account, domain, guid, inputs.event_type(posted.text("event_type")),
                                             unmasked_url(posted.text("url"), current.url))
    except CoreError as exc:
        return form_error(request, exc, f"{_domain_path(domain)}/webhooks/{guid}", Dialect.KIRIM)
    return redirect(request, _domain_path(domain), f"Webhook updated: {row.event_type} → {masked_url(row.url)}")


@router.post("/domains/{name}/webhooks/{guid}/delete")
async def delete_domain_webhook(request: Request, name: DomainName, guid: Guid, posted: PostedForm,
                                subscriptions: deps.SubscriptionsDep) -> Response:
    domain = await subscriptions.domain(posted.account, name)
    row = await subscriptions.delete_row(posted.account, domain, guid)
    return redirect(request, _domain_path(domain), f"Webhook deleted: {row.event_type} → {masked_url(row.url)}")


@router.post("/domains/{name}/webhooks/{guid}/test")
async def test_domain_webhook(request: Request, name: DomainName, guid: Guid, posted: PostedForm,
                              subscriptions: deps.SubscriptionsDep, svc: deps.ServicesDep) -> Response:
    domain = await subscriptions.domain(posted.account, name)
    row = await subscriptions.get_row(posted.account, domain, guid)
    message, kind = await send_test(svc, posted.account, domain, row.event_type, row.url, row.payload_format)
    return redirect(request, _domain_path(domain), message, kind)


@router.post("/domains/{name}/webhooks/{guid}/enable")
async def enable_domain_webhook(request: Request, name: DomainName, guid: Guid, posted: PostedForm,
                                subscriptions: deps.SubscriptionsDep, deliveries: deps.DeliveriesDep) -> Response:
    domain = await subscriptions.domain(posted.account, name)
    row = await subscriptions.get_row(posted.account, domain, guid)
    await deliveries.enable_webhook(posted.account.id, row.guid)
    return redirect(request, _domain_path(domain),
                    f"Webhook re-enabled: {masked_url(row.url)}. Deliveries that failed while it was disabled stay "
                    "failed: recover them from the deliveries page.")
