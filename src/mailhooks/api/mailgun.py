"""The Mailgun dialect: domain webhooks (v3, v4), account webhooks (v1) and the signing key (v5).

Only translation lives here: form fields in, core calls, Mailgun's exact bodies out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Path
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.auth import mailgun_account
from mailhooks.api.bodies import Form, read_form
from mailhooks.api.openapi.mailgun import ALL_QUERY, FORM_BODY, IDS_QUERY, URL_QUERY, responses
from mailhooks.api.responses import MailgunJSON
from mailhooks.api.samples import send_test
from mailhooks.api.scopes import requires
from mailhooks.api.state import Services, services
from mailhooks.core import accounts as core_accounts
from mailhooks.core.errors import ValidationFailed
from mailhooks.core.event_types import MAILGUN_ALIASES, MAILGUN_TYPES, parse_type
from mailhooks.core.models import Account, Webhook
from mailhooks.core.payloads import PayloadFormat
from mailhooks.core.scopes import Need

router = APIRouter(tags=["Mailgun"])

KNOWN_FIELDS = {"id", "url", "event_types", "description"}


class MailgunBadRequest(ValidationFailed):
    def __init__(self, message: str) -> None:
        super().__init__({"request": [message]}, message)


def _missing(name: str) -> MailgunBadRequest:
    return MailgunBadRequest(f"Missing parameter '{name}'")


async def _form(request: Request) -> Form:
    form = await read_form(request)
    unknown = sorted(form.keys() - KNOWN_FIELDS)
    if unknown:
        raise MailgunBadRequest(f"Unknown parameter '{unknown[0]}'")
    return form


def _mailgun_type(name: str) -> str | None:
    """A Mailgun webhook name or legacy alias (answered with the new name), blanks around it ignored."""
    return parse_type(name.strip(), MAILGUN_TYPES, MAILGUN_ALIASES)


def _listed(values: Sequence[str]) -> list[str]:
    """Mailgun's lists: the field repeated, comma-separated, or both; blanks dropped."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _webhook_name(name: str) -> str:
    event_type = _mailgun_type(name)
    if event_type is None:
        raise MailgunBadRequest(f"Invalid webhook name '{name}'")
    return event_type


def _urls(values: Sequence[str]) -> list[str]:
    urls = [value.strip() for value in values if value.strip()]
    if not urls:
        raise _missing("url")
    return urls


def _event_types(values: Sequence[str]) -> list[str]:
    names = _listed(values)
    if not names:
        raise _missing("event_types")
    out = []
    for name in names:
        event_type = _mailgun_type(name)
        if event_type is None:
            raise MailgunBadRequest(f"Invalid event type '{name}'")
        out.append(event_type)
    return out


def _single_url(form: Form) -> str:
    urls = _urls(form.getlist("url"))
    if len(urls) > 1:
        raise MailgunBadRequest("Only one 'url' is allowed")
    return urls[0]


# ---------------------------------------------------------------------------- v3 (one type per call)
# No length limits here: an impossible domain is "Domain not found", an impossible name "Invalid webhook name".
DomainPath = Path(..., description="Sending domain")
NamePath = Path(..., description="Webhook name: accepted, clicked, opened, unsubscribed, delivered, "
                "permanent_fail, temporary_fail, complained (legacy names accepted as aliases)")


@router.get("/v3/domains/{domain}/webhooks", responses=responses("MailgunWebhookMap", 404))
@requires(Need.READ)
async def list_webhooks(domain: str = DomainPath, account: Account = Depends(mailgun_account),
                        svc: Services = Depends(services)) -> Response:
    subs = svc.subscriptions
    return MailgunJSON({"webhooks": _map(await subs.urls_by_type(account, await subs.domain(account, domain)))})


@router.post("/v3/domains/{domain}/webhooks", responses=responses("MailgunWebhookChange", 400, 404),
             openapi_extra={"requestBody": FORM_BODY})
@requires(Need.MANAGE)
async def create_webhook(request: Request, domain: str = DomainPath, account: Account = Depends(mailgun_account),
                         svc: Services = Depends(services)) -> Response:
    form = await _form(request)
    name = form.get("id")
    if not name and form.getlist("event_types"):
        # The Python SDK sends v4 calls to /v3 paths: served as v4 (docs/dialects/mailgun.md#v4-calls-sent-to-v3-paths).
        return await _v4_add(form, domain, account, svc)
    if not name:
        raise _missing("id")
    event_type = _webhook_name(name)
    urls = _urls(form.getlist("url"))
    subs = svc.subscriptions
    created = await subs.create_type(account, await subs.domain(account, domain), event_type, urls)
    return MailgunJSON({"message": "Webhook has been created", "webhook": {"urls": created}})


@router.put("/v3/domains/{domain}/webhooks", responses=responses("MailgunWebhookMap", 400, 404),
            openapi_extra={"requestBody": FORM_BODY}, summary="v4 update sent to a /v3 path (Python SDK)")
@requires(Need.MANAGE)
async def update_collection(request: Request, domain: str = DomainPath,
                            account: Account = Depends(mailgun_account), svc: Services = Depends(services)) -> Response:
    return await _v4_set(await _form(request), domain, account, svc)


@router.delete("/v3/domains/{domain}/webhooks", responses=responses("MailgunWebhookMap", 400, 404),
               summary="v4 delete sent to a /v3 path (Python SDK)", openapi_extra=URL_QUERY)
@requires(Need.MANAGE)
async def delete_collection(request: Request, domain: str = DomainPath,
                            account: Account = Depends(mailgun_account), svc: Services = Depends(services)) -> Response:
    return await _v4_delete(request, domain, account, svc)


@router.get("/v3/domains/{domain}/webhooks/{name}", responses=responses("MailgunWebhook", 400, 404))
@requires(Need.READ)
async def get_webhook(domain: str = DomainPath, name: str = NamePath, account: Account = Depends(mailgun_account),
                      svc: Services = Depends(services)) -> Response:
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    return MailgunJSON({"webhook": {"urls": await subs.urls_of_type(account, dom, _webhook_name(name))}})


@router.put("/v3/domains/{domain}/webhooks/{name}", responses=responses("MailgunWebhookChange", 400, 404),
            openapi_extra={"requestBody": FORM_BODY})
@requires(Need.MANAGE)
async def update_webhook(request: Request, domain: str = DomainPath, name: str = NamePath,
                         account: Account = Depends(mailgun_account), svc: Services = Depends(services)) -> Response:
    form = await _form(request)
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    event_type = _webhook_name(name)
    urls = await subs.replace_type(account, dom, event_type, _urls(form.getlist("url")))
    return MailgunJSON({"message": "Webhook has been updated", "webhook": {"urls": urls}})


@router.delete("/v3/domains/{domain}/webhooks/{name}", responses=responses("MailgunWebhookChange", 400, 404))
@requires(Need.MANAGE)
async def delete_webhook(domain: str = DomainPath, name: str = NamePath, account: Account = Depends(mailgun_account),
                         svc: Services = Depends(services)) -> Response:
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    removed = await subs.delete_type(account, dom, _webhook_name(name))
    return MailgunJSON({"message": "Webhook has been deleted", "webhook": {"urls": removed}})


@router.put("/v3/domains/{domain}/webhooks/{name}/test", responses=responses("MailgunTestResult", 400, 404),
            openapi_extra={"requestBody": FORM_BODY})
@requires(Need.MANAGE)
async def test_webhook(request: Request, domain: str = DomainPath, name: str = NamePath,
                       account: Account = Depends(mailgun_account), svc: Services = Depends(services)) -> Response:
    """Send a sample event of this type to ``url`` (or to the type's first configured URL)."""
    form = await _form(request)
    subs = svc.subscriptions
    dom = await subs.domain(account, domain)
    event_type = _webhook_name(name)
    urls = [u.strip() for u in form.getlist("url") if u.strip()]
    if not urls:
        urls = await subs.urls_of_type(account, dom, event_type)
    url, result = await send_test(svc, account, dom, event_type, urls[0], PayloadFormat.MAILGUN)
    code = result.status_code or 0
    message = (f"Webhook test succeeded: {url} answered {code}" if result.ok
               else f"Webhook test failed: {result.error or f'{url} answered {code}'}")
    return MailgunJSON({"code": code, "message": message})


# ---------------------------------------------------------------------------- v4 (one URL, many types)
def _map(grouped: dict[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    return {event_type: {"urls": urls} for event_type, urls in grouped.items()}


async def _v4_add(form: Form, domain: str, account: Account, svc: Services) -> Response:
    url = _single_url(form)
    types = _event_types(form.getlist("event_types"))
    subs = svc.subscriptions
    grouped = await subs.add_url(account, await subs.domain(account, domain), url, types)
    return MailgunJSON({"webhooks": _map(grouped)})


async def _v4_set(form: Form, domain: str, account: Account, svc: Services) -> Response:
    url = _single_url(form)
    types = _event_types(form.getlist("event_types"))
    subs = svc.subscriptions
    grouped = await subs.set_url_types(account, await subs.domain(account, domain), url, types)
    return MailgunJSON({"webhooks": _map(grouped)})


async def _v4_delete(request: Request, domain: str, account: Account, svc: Services) -> Response:
    urls = _listed(request.query_params.getlist("url"))
    if not urls:
        raise _missing("url")
    subs = svc.subscriptions
    grouped = await subs.remove_urls(account, await subs.domain(account, domain), urls)
    return MailgunJSON({"webhooks": _map(grouped)})


@router.post("/v4/domains/{domain}/webhooks", responses=responses("MailgunWebhookMap", 400, 404),
             openapi_extra={"requestBody": FORM_BODY})
@requires(Need.MANAGE)
async def v4_create(request: Request, domain: str = DomainPath, account: Account = Depends(mailgun_account),
                    svc: Services = Depends(services)) -> Response:
    return await _v4_add(await _form(request), domain, account, svc)


@router.put("/v4/domains/{domain}/webhooks", responses=responses("MailgunWebhookMap", 400, 404),
            openapi_extra={"requestBody": FORM_BODY})
@requires(Need.MANAGE)
async def v4_update(request: Request, domain: str = DomainPath, account: Account = Depends(mailgun_account),
                    svc: Services = Depends(services)) -> Response:
    return await _v4_set(await _form(request), domain, account, svc)


@router.delete("/v4/domains/{domain}/webhooks", responses=responses("MailgunWebhookMap", 400, 404),
               openapi_extra=URL_QUERY)
@requires(Need.MANAGE)
async def v4_delete(request: Request, domain: str = DomainPath, account: Account = Depends(mailgun_account),
                    svc: Services = Depends(services)) -> Response:
    return await _v4_delete(request, domain, account, svc)


# ---------------------------------------------------------------------------- v1 account-level webhooks
def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _account_webhook(rows: Sequence[Webhook]) -> dict[str, Any]:
    first = rows[0]
    return {
        "webhook_id": first.group_id,
        "description": first.description or "",
        "url": first.url,
        "event_types": [row.event_type for row in rows],
        "created_at": _rfc3339(min(row.created_at for row in rows)),
    }


WebhookIdPath = Path(...)  # an impossible id is "Webhook not found"


@router.get("/v1/webhooks", responses=responses("MailgunAccountWebhookList", 400),
            openapi_extra={"parameters": [IDS_QUERY]})
@requires(Need.READ)
async def v1_list(request: Request, account: Account = Depends(mailgun_account),
                  svc: Services = Depends(services)) -> Response:
    wanted = _listed(request.query_params.getlist("webhook_ids")) or None
    groups = await svc.subscriptions.account_groups(account, wanted)
    return MailgunJSON({"webhooks": [_account_webhook(group) for group in groups]})


@router.post("/v1/webhooks", responses=responses("MailgunWebhookId", 400, 409),
             openapi_extra={"requestBody": FORM_BODY})
@requires(Need.MANAGE)
async def v1_create(request: Request, account: Account = Depends(mailgun_account),
                    svc: Services = Depends(services)) -> Response:
    form = await _form(request)
    url = _single_url(form)
    types = _event_types(form.getlist("event_types"))
    rows = await svc.subscriptions.create_account_webhook(account, url, types, form.get("description"))
    return MailgunJSON({"webhook_id": rows[0].group_id})


@router.get("/v1/webhooks/{webhook_id}", responses=responses("MailgunAccountWebhook", 404))
@requires(Need.READ)
async def v1_get(webhook_id: str = WebhookIdPath, account: Account = Depends(mailgun_account),
                 svc: Services = Depends(services)) -> Response:
    return MailgunJSON(_account_webhook(await svc.subscriptions.account_group(account, webhook_id)))


@router.put("/v1/webhooks/{webhook_id}", status_code=204, responses=responses(None, 400, 404, 409, ok_code=204),
            openapi_extra={"requestBody": FORM_BODY})
@requires(Need.MANAGE)
async def v1_update(request: Request, webhook_id: str = WebhookIdPath, account: Account = Depends(mailgun_account),
                    svc: Services = Depends(services)) -> Response:
    form = await _form(request)
    subs = svc.subscriptions
    await subs.account_group(account, webhook_id)  # 404 before input errors, like a lookup would
    url = _single_url(form)
    types = _event_types(form.getlist("event_types"))
    await subs.replace_account_webhook(account, webhook_id, url, types, form.get("description"))
    return Response(status_code=204)


@router.delete("/v1/webhooks/{webhook_id}", status_code=204, responses=responses(None, 404, ok_code=204))
@requires(Need.MANAGE)
async def v1_delete(webhook_id: str = WebhookIdPath, account: Account = Depends(mailgun_account),
                    svc: Services = Depends(services)) -> Response:
    await svc.subscriptions.account_group(account, webhook_id)
    await svc.subscriptions.delete_account_webhooks(account, [webhook_id])
    return Response(status_code=204)


@router.delete("/v1/webhooks", status_code=204, responses=responses(None, 400, ok_code=204),
               openapi_extra={"parameters": [IDS_QUERY, ALL_QUERY]})
@requires(Need.MANAGE)
async def v1_delete_many(request: Request, account: Account = Depends(mailgun_account),
                         svc: Services = Depends(services)) -> Response:
    ids = _listed(request.query_params.getlist("webhook_ids"))
    delete_all = (request.query_params.get("all") or "").lower() == "true"
    if not ids and not delete_all:
        raise MailgunBadRequest("Missing parameter 'webhook_ids' or 'all'")
    # "if both are provided, the specific webhook_ids will be deleted"
    await svc.subscriptions.delete_account_webhooks(account, ids or None)
    return Response(status_code=204)


# ---------------------------------------------------------------------------- v5 signing key
@router.get("/v5/accounts/http_signing_key", responses=responses("MailgunSigningKey"))
@requires(Need.MANAGE)
async def get_signing_key(account: Account = Depends(mailgun_account)) -> Response:
    return MailgunJSON({"http_signing_key": account.signing_key})


@router.post("/v5/accounts/http_signing_key", responses=responses("MailgunSigningKey", 400))
@requires(Need.ADMIN)
async def regenerate_signing_key(request: Request, account: Account = Depends(mailgun_account),
                                 svc: Services = Depends(services)) -> Response:
    await read_form(request)  # the JS SDK sends an empty urlencoded body; anything unreadable is a 400
    # Mailgun's answer exactly (its SDKs read it); the overlap of the replaced key is the native API's to tell.
    rotated = await core_accounts.rotate_signing_key(svc.store, account, svc.settings.signing_key_overlap)
    return MailgunJSON({"message": "regenerated HTTP signing key for account",
                        "http_signing_key": rotated.signing_key})
