"""``POST /v1/replays`` and ``GET /v1/replays/{id}``: replays and back-fills of a time range (``core.replays``),
run in the background by the workers (``worker.replays``). Thin: the rules are core's, the SQL db's."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.auth import native_account
from mailhooks.api.openapi.common import openapi_json
from mailhooks.api.openapi.native import ERRORS
from mailhooks.api.openapi.replays import REPLAY_BODY
from mailhooks.api.responses import JSON
from mailhooks.api.scopes import requires
from mailhooks.api.state import Services, services
from mailhooks.core.errors import ValidationFailed, WebhookNotFound
from mailhooks.core.models import Account
from mailhooks.core.nesting import TOO_DEEP, is_recursion_error
from mailhooks.core.replays import ReplayNotFound, ReplayRequest, ReplayState, parse_replay_request, progress
from mailhooks.core.scopes import Need
from mailhooks.db.replays import ReplayStore, subscription

router = APIRouter(tags=["native"])

PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


def replay_view(row: dict[str, Any]) -> dict[str, Any]:
    """A replay as the native API (and the dashboard) shows it."""
    state = ReplayState(row["state"])
    return {
        "id": row["guid"], "domain": row["domain"], "since": row["since"], "until": row["until"],
        "status": row["scope"], "webhook": row["webhook"], "to_webhook": row["to_webhook"], "state": state.value,
        "matched": row["matched"], "queued": row["queued"], "skipped": row["skipped"],
        "progress": round(progress(row["cursor"], row["start_id"], row["end_id"], state), 4),
        "error": row["error"], "created_at": row["created_at"], "started_at": row["started_at"],
        "finished_at": row["finished_at"], "updated_at": row["updated_at"],
    }


async def start_replay(svc: Services, account: Account, request: ReplayRequest) -> str:
    """Resolve the request's names within the account (another account's are not found) and store it."""
    domain = await svc.subscriptions.domain(account, request.domain)
    db = svc.deliveries.db
    webhook_id = to_webhook_id = None
    if request.webhook is not None:
        found = await subscription(db, account.id, request.webhook)
        if found is None:
            raise WebhookNotFound()
        webhook_id = found[0]
    if request.to_webhook is not None:
        found = await subscription(db, account.id, request.to_webhook)
        if found is None:
            raise WebhookNotFound()
        if found[1] not in (None, domain.id):
            raise ValidationFailed.field("to_webhook", "This subscription does not receive this domain's events.")
        to_webhook_id = found[0]
    return await ReplayStore(db).create(account.id, domain.id, request, webhook_id, to_webhook_id)


@router.post("/v1/replays", status_code=202,
             responses={202: openapi_json("ReplayStarted", "Accepted"), **ERRORS,
                        413: openapi_json("NativeError", "Body too large")}, openapi_extra=REPLAY_BODY)
@requires(Need.MANAGE)
async def create_replay(request: Request, account: Account = Depends(native_account),
                        svc: Services = Depends(services)) -> Response:
    """Replay a time range of a domain's deliveries (each gets one more attempt, with its own ``webhook-id``),
    or back-fill a subscription with the range's events (``to_webhook``). Runs in the background: follow it
    with ``GET /v1/replays/{id}``."""
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = TOO_DEEP if is_recursion_error(str(exc)) else "The body must be valid JSON."
        raise ValidationFailed.field("body", message) from exc
    guid = await start_replay(svc, account, parse_replay_request(body))
    return JSON({"id": guid}, status_code=202)


@router.get("/v1/replays/{guid}", responses={200: openapi_json("Replay"), **ERRORS})
@requires(Need.READ)
async def get_replay(guid: str = PathParam(..., max_length=64, pattern=PRINTABLE),
                     account: Account = Depends(native_account), svc: Services = Depends(services)) -> Response:
    """A replay's state and progress: ``matched`` (counted when a worker starts it), ``queued`` so far,
    ``skipped`` (in flight at its turn, or a back-fill's events the subscription already had)."""
    row = await ReplayStore(svc.deliveries.db).get(account.id, guid)
    if row is None:
        raise ReplayNotFound()
    return JSON(replay_view(row))

