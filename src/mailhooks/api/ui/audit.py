"""The audit log (``/ui/audit``): who changed what in the account, newest first, by cursor."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.ui import deps
from mailhooks.api.ui.inputs import PAGE_SIZE, query_id
from mailhooks.api.ui.rendering import render
from mailhooks.api.ui.session import SignedIn

router = APIRouter()

AUDIT_PAGE_SIZE = PAGE_SIZE * 2


@router.get("/audit")
async def audit_page(request: Request, session: SignedIn, store: deps.StoreDep) -> Response:
    before = query_id(request, "before")
    entries = await store.audit_page(session.account.id, before, AUDIT_PAGE_SIZE)
    older = entries[-1].id if len(entries) == AUDIT_PAGE_SIZE else None
    return render(request, "audit.html", session=session, nav="audit", entries=entries, older=older,
                  first=before is None)
