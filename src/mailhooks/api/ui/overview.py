"""The overview (``/ui``): each domain's last-24-hour health and the account's last hour, minute by minute."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.ui import chart, deps
from mailhooks.api.ui.inputs import PAGE_SIZE, offset_of, page_number, pager
from mailhooks.api.ui.rendering import render
from mailhooks.api.ui.session import SignedIn

router = APIRouter()


@router.get("")
async def overview(request: Request, session: SignedIn, dash: deps.DashboardDep) -> Response:
    account = session.account
    page = page_number(request)
    domains, total = await dash.domains_page(account.id, offset_of(page), PAGE_SIZE)
    health = await dash.health(account.id, [d.id for d in domains])
    minutes = await dash.per_minute(account.id)
    return render(request, "overview.html", session=session, nav="overview", domains=domains, health=health,
                  pager=pager(page, total), chart=chart.last_hour(minutes))
