"""Replays and back-fills (``/ui/replays``): the account's recent ones with their progress, and the form that
starts one; the same rules and storage as ``POST /v1/replays`` (``api.replays``)."""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.dialects.base import Dialect
from mailhooks.api.replays import replay_view, start_replay
from mailhooks.api.ui import deps
from mailhooks.api.ui.errors import form_error
from mailhooks.api.ui.formatting import datetime_local
from mailhooks.api.ui.inputs import epoch
from mailhooks.api.ui.rendering import redirect, render
from mailhooks.api.ui.session import PostedForm, SignedIn
from mailhooks.api.ui.site import PREFIX
from mailhooks.core.errors import CoreError
from mailhooks.core.replays import ReplayScope, parse_replay_request
from mailhooks.db.replays import ReplayStore

PAGE = f"{PREFIX}/replays"
SHOWN = 20
DOMAIN_CHOICES = 200

router = APIRouter()


@router.get("/replays")
async def replays(request: Request, session: SignedIn, dash: deps.DashboardDep, svc: deps.ServicesDep) -> Response:
    account = session.account
    rows = await ReplayStore(svc.deliveries.db).recent(account.id, SHOWN)
    domains, _ = await dash.domains_page(account.id, 0, DOMAIN_CHOICES)
    chosen = request.query_params.get("domain", "")
    return render(request, "replays.html", session=session, nav="replays", replays=[replay_view(r) for r in rows],
                  domains=domains, chosen=chosen, webhooks=await dash.webhook_choices(account.id),
                  scopes=tuple(ReplayScope), since=datetime_local(time.time() - 24 * 3600),
                  running=any(r["state"] in ("queued", "running") for r in rows))


@router.post("/replays")
async def start(request: Request, posted: PostedForm, svc: deps.ServicesDep) -> Response:
    """The form's fields are the API's; empty ones are absent."""
    body: dict[str, object] = {name: posted.text(name) for name in ("domain", "status", "webhook", "to_webhook")
                               if posted.text(name)}
    try:
        for name in ("since", "until"):
            value = epoch(posted.text(name), name)
            if value is not None:
                body[name] = value
        guid = await start_replay(svc, posted.account, parse_replay_request(body))
    except CoreError as exc:
        return form_error(request, exc, PAGE, Dialect.NATIVE)
    kind = "Back-fill" if body.get("to_webhook") else "Replay"
    return redirect(request, PAGE, f"{kind} {guid} queued: a worker runs it in the background.")
