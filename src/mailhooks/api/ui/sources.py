"""Intake sources (``/ui/sources``): the account's mail-platform feeds, a form to add one (what to enter at
the provider is shown once, with any generated credentials) and deleting one. The rules are those of
``POST /v1/sources`` (``core.sources.service``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.dialects import Dialect
from mailhooks.api.state import Services
from mailhooks.api.ui import deps
from mailhooks.api.ui.errors import form_error
from mailhooks.api.ui.inputs import Guid
from mailhooks.api.ui.rendering import redirect, render
from mailhooks.api.ui.session import PostedForm, Session, SignedIn
from mailhooks.api.ui.site import PREFIX
from mailhooks.core.errors import CoreError
from mailhooks.core.sources.base import Provider
from mailhooks.core.sources.service import Sources
from mailhooks.db.sources import SourceStore

PAGE = f"{PREFIX}/sources"
FIELDS = ("provider", "domain", "signing_key", "public_key", "topic_arn")

router = APIRouter()


def _sources(svc: Services) -> Sources:
    return Sources(SourceStore(svc.store), svc.intake)


async def _page(request: Request, session: Session, svc: Services, created: dict[str, Any] | None = None) -> Response:
    domains = await svc.store.list_domains(session.account.id)
    return render(request, "sources.html", session=session, nav="sources",
                  sources=await _sources(svc).list(session.account), domains=[d.name for d in domains],
                  providers=[p.value for p in Provider], created=created)


@router.get("/sources")
async def sources_page(request: Request, session: SignedIn, svc: deps.ServicesDep) -> Response:
    return await _page(request, session, svc)


@router.post("/sources")
async def create_source(request: Request, posted: PostedForm, svc: deps.ServicesDep) -> Response:
    given = {name: posted.text(name) for name in FIELDS if posted.text(name)}
    try:
        created = await _sources(svc).create(posted.account, given, str(request.base_url))
    except CoreError as exc:
        return form_error(request, exc, PAGE, Dialect.NATIVE)
    return await _page(request, posted.session, svc, created=created)


@router.post("/sources/{guid}/delete")
async def delete_source(request: Request, guid: Guid, posted: PostedForm, svc: deps.ServicesDep) -> Response:
    await _sources(svc).delete(posted.account, guid)
    return redirect(request, PAGE, "Source deleted: its intake URL answers 404 from now on.")
