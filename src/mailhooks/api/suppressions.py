"""The Mailgun dialect's suppressions API: ``/v3/{domain}/bounces``, ``/unsubscribes``, ``/complaints``.

Translation only: Mailgun's paths, form or JSON-list bodies, its paging links and its messages; the
rules live in ``core.suppressions`` and the storage in ``db.suppressions``. The same three lists are fed
by events (a permanent failure adds a bounce), so the official SDKs see both.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.auth import mailgun_account
from mailhooks.api.bodies import read_form, read_json
from mailhooks.api.mailgun import MailgunBadRequest
from mailhooks.api.openapi.suppressions import ADD_BODY, LIST_QUERY, responses
from mailhooks.api.responses import MailgunJSON
from mailhooks.api.scopes import requires
from mailhooks.api.state import Services, services
from mailhooks.core.accounts import find_domain
from mailhooks.core.errors import NotFound, ValidationFailed
from mailhooks.core.models import Account, Domain
from mailhooks.core.scopes import Need
from mailhooks.core.suppressions import (
    Suppression,
    SuppressionKind,
    SuppressionPage,
    normalise_address,
    parse_entries,
)
from mailhooks.db.suppressions import Suppressions

router = APIRouter(tags=["Mailgun suppressions"])

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class _List:
    """One list's words in Mailgun's answers."""

    def __init__(self, kind: SuppressionKind, path: str, table: str, removed_one: str, removed_all: str) -> None:
        self.kind, self.path, self.table = kind, path, table
        self.removed_one, self.removed_all = removed_one, removed_all


LISTS = {
    "bounces": _List(SuppressionKind.BOUNCE, "bounces", "bounces", "Bounced address has been removed",
                     "Bounced addresses for this domain have been removed"),
    "unsubscribes": _List(SuppressionKind.UNSUBSCRIBE, "unsubscribes", "unsubscribes",
                          "Unsubscribe event has been removed", "Unsubscribe events for this domain have been removed"),
    "complaints": _List(SuppressionKind.COMPLAINT, "complaints", "complaints", "Spam complaint has been removed",
                        "Spam complaints for this domain have been removed"),
}

DomainPath = Path(..., description="Sending domain")
AddressPath = Path(..., description="Recipient address")


class AddressNotFound(NotFound):
    def __init__(self, table: str) -> None:
        super().__init__(f"Address not found in {table} table", what="address")


def _date(ts: float) -> str:
    """Mailgun's dates: ``Fri, 21 Oct 2011 11:02:55 UTC``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%a, %d %b %Y %H:%M:%S UTC")


def _item(entry: Suppression) -> dict[str, Any]:
    out: dict[str, Any] = {"address": entry.address}
    if entry.kind is SuppressionKind.BOUNCE:
        out |= {"code": entry.code, "error": entry.error or ""}
    elif entry.kind is SuppressionKind.UNSUBSCRIBE:
        out["tags"] = list(entry.tags)
    out["created_at"] = _date(entry.created_at)
    return out


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise MailgunBadRequest(f"Invalid parameter 'limit': must be a number from 1 to {MAX_LIMIT}")
    return int(raw)


async def _domain(svc: Services, account: Account, name: str) -> Domain:
    return await find_domain(svc.store, account, name)


def _paging(page: SuppressionPage, limit: int, url: str) -> dict[str, str]:
    def link(**params: str) -> str:
        return f"{url}?{urlencode({**params, 'limit': str(limit)})}"

    first, last = (page.items[0].address, page.items[-1].address) if page.items else ("", "")
    return {"first": link(page="first"), "last": link(page="last"),
            "next": link(page="next", address=last), "previous": link(page="previous", address=first)}


async def list_entries(request: Request, which: _List, domain: str, account: Account, svc: Services) -> Response:
    limit = _limit(request)
    dom = await _domain(svc, account, domain)
    page_name = request.query_params.get("page", "")
    address = request.query_params.get("address") or None
    if address is not None and (len(address) > 254 or "\x00" in address):
        raise MailgunBadRequest("Invalid parameter 'address'")
    address = address.lower() if address else None
    store = Suppressions(svc.store)
    if page_name == "last":
        page = await store.list(dom.id, which.kind, limit, from_end=True)
    elif page_name == "previous" and address:
        page = await store.list(dom.id, which.kind, limit, before=address)
    elif page_name == "next" and address:
        page = await store.list(dom.id, which.kind, limit, after=address)
    elif page_name in ("", "first", "next", "previous"):
        page = await store.list(dom.id, which.kind, limit, after=address if page_name == "" else None)
    else:
        raise MailgunBadRequest("Invalid parameter 'page': first, last, next or previous")
    url = f"{str(request.base_url).rstrip('/')}/v3/{dom.name}/{which.path}"
    return MailgunJSON({"items": [_item(e) for e in page.items], "paging": _paging(page, limit, url)})


def _listed_address(which: _List, address: str) -> str:
    """The path's address as stored; one that cannot be an address is simply not in the list."""
    try:
        return normalise_address(address)
    except ValidationFailed:
        raise AddressNotFound(which.table) from None


async def get_entry(which: _List, domain: str, address: str, account: Account, svc: Services) -> Response:
    dom = await _domain(svc, account, domain)
    clean = _listed_address(which, address)
    entry = await Suppressions(svc.store).get(dom.id, which.kind, clean)
    if entry is None:
        raise AddressNotFound(which.table)
    return MailgunJSON(_item(entry))


async def add_entries(request: Request, which: _List, domain: str, account: Account, svc: Services) -> Response:
    dom = await _domain(svc, account, domain)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    single = content_type != "application/json"
    if single:
        form = await read_form(request)
        names = form.keys()
        item: dict[str, Any] = {name: form.get(name) for name in names}
        if which.kind is SuppressionKind.UNSUBSCRIBE and len(form.getlist("tag")) > 1:
            item["tags"] = form.getlist("tag")
        items: list[object] = [item]
    else:
        body = await read_json(request)
        items = body if isinstance(body, list) else [body]
    try:
        entries = parse_entries(which.kind, items, time.time())
    except ValidationFailed as exc:
        field, messages = next(iter(exc.errors.items()))
        raise MailgunBadRequest(messages[0] if field == "address" else f"Invalid parameter '{field}': {messages[0]}") \
            from None
    await Suppressions(svc.store).add(account.id, dom.id, entries)
    if single:
        return MailgunJSON({"message": f"Address has been added to the {which.table} table",
                            "address": entries[0].address})
    noun = "address has" if len(entries) == 1 else "addresses have"
    return MailgunJSON({"message": f"{len(entries)} {noun} been added to the {which.table} table"})


async def delete_entry(which: _List, domain: str, address: str, account: Account, svc: Services) -> Response:
    dom = await _domain(svc, account, domain)
    clean = _listed_address(which, address)
    if not await Suppressions(svc.store).delete(dom.id, which.kind, clean):
        raise AddressNotFound(which.table)
    return MailgunJSON({"message": which.removed_one, "address": clean})


async def delete_all(which: _List, domain: str, account: Account, svc: Services) -> Response:
    dom = await _domain(svc, account, domain)
    await Suppressions(svc.store).delete(dom.id, which.kind, None)
    return MailgunJSON({"message": which.removed_all})


def _routes(which: _List) -> None:
    base = f"/v3/{{domain}}/{which.path}"
    kind = which.kind.value.capitalize()

    @router.get(base, responses=responses(f"Mailgun{kind}List", 400, 404), openapi_extra=LIST_QUERY,
                name=f"list_{which.path}")
    @requires(Need.READ)
    async def _list(request: Request, domain: str = DomainPath, account: Account = Depends(mailgun_account),
                    svc: Services = Depends(services)) -> Response:
        return await list_entries(request, which, domain, account, svc)

    @router.get(base + "/{address}", responses=responses(f"Mailgun{kind}", 404), name=f"get_{which.path}")
    @requires(Need.READ)
    async def _get(domain: str = DomainPath, address: str = AddressPath, account: Account = Depends(mailgun_account),
                   svc: Services = Depends(services)) -> Response:
        return await get_entry(which, domain, address, account, svc)

    @router.post(base, responses=responses("MailgunSuppressionAdded", 400, 404), openapi_extra=ADD_BODY[which.kind],
                 name=f"add_{which.path}")
    @requires(Need.MANAGE)
    async def _add(request: Request, domain: str = DomainPath, account: Account = Depends(mailgun_account),
                   svc: Services = Depends(services)) -> Response:
        return await add_entries(request, which, domain, account, svc)

    @router.delete(base + "/{address}", responses=responses("MailgunSuppressionRemoved", 404),
                   name=f"delete_{which.path}")
    @requires(Need.MANAGE)
    async def _delete(domain: str = DomainPath, address: str = AddressPath,
                      account: Account = Depends(mailgun_account), svc: Services = Depends(services)) -> Response:
        return await delete_entry(which, domain, address, account, svc)

    @router.delete(base, responses=responses("MailgunMessage", 404), name=f"clear_{which.path}")
    @requires(Need.MANAGE)
    async def _clear(domain: str = DomainPath, account: Account = Depends(mailgun_account),
                     svc: Services = Depends(services)) -> Response:
        return await delete_all(which, domain, account, svc)


for _which in LISTS.values():
    _routes(_which)
