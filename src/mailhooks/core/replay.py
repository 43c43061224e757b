"""Asking for one more attempt of a delivery now: the rule both the native API and the dashboard follow."""

from __future__ import annotations

from typing import Protocol

from mailhooks.core.deliveries import DeliveryStatus
from mailhooks.core.errors import DeliveryInFlight, DeliveryNotFound


class Requeues(Protocol):
    async def requeue(self, account_id: int, delivery_id: int) -> str | None:
        """Queue the delivery for an attempt now unless it is in flight; its previous status, ``None`` if
        the account has no such delivery."""


async def retry_now(queue: Requeues, account_id: int, delivery_id: int) -> None:
    """Queue the delivery for one more attempt now (a replay, whatever its status).

    A delivery being attempted right now is left alone and refused (``DeliveryInFlight``: the native API
    answers 409, the dashboard says to try again in a moment); the attempt under way decides its fate.
    """
    previous = await queue.requeue(account_id, delivery_id)
    if previous is None:
        raise DeliveryNotFound()
    if previous == DeliveryStatus.DELIVERING:
        raise DeliveryInFlight(delivery_id)
