"""One delivery (``/ui/deliveries/{id}``): its event, target, request headers and every attempt; and
"retry now"."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.api.ui import deps
from mailhooks.api.ui.inputs import PAGE_SIZE, DeliveryId, offset_of, page_number, pager
from mailhooks.api.ui.rendering import redirect, render
from mailhooks.api.ui.session import PostedForm, SignedIn
from mailhooks.api.ui.site import PREFIX
from mailhooks.core.deliveries import DeliveryStatus
from mailhooks.core.errors import DeliveryInFlight, NotFound
from mailhooks.core.replay import retry_now

router = APIRouter()


@router.get("/deliveries/{delivery_id}")
async def delivery_page(request: Request, delivery_id: DeliveryId, session: SignedIn,
                        dash: deps.DashboardDep) -> Response:
    page = page_number(request)
    found = await dash.delivery(session.account.id, delivery_id, offset_of(page), PAGE_SIZE)
    if found is None:
        raise NotFound("Delivery not found", what="delivery")
    row, attempts, total = found
    return render(request, "delivery.html", session=session, nav="deliveries", d=row, attempts=attempts,
                  pager=pager(page, total), in_flight=row["status"] == DeliveryStatus.DELIVERING)


@router.post("/deliveries/{delivery_id}/retry")
async def retry_delivery(request: Request, delivery_id: DeliveryId, posted: PostedForm,
                         deliveries: deps.DeliveriesDep) -> Response:
    to = f"{PREFIX}/deliveries/{delivery_id}"
    try:
        await retry_now(deliveries, posted.account.id, delivery_id)
    except DeliveryInFlight:  # an attempt in flight is left to finish: refused, not queued
        return redirect(request, to, "This delivery is being attempted right now; try again in a moment.", "error")
    deps.wake_dispatcher(request)
    return redirect(request, to, "Queued for another attempt now.")
