"""The dispatcher (placeholder until the delivery issue lands)."""

from __future__ import annotations

from mailhooks.api.state import Services
from mailhooks.config import Settings


async def start_dispatcher(svc: Services) -> None:
    return None


async def stop_dispatcher(svc: Services) -> None:
    return None


def run_worker(settings: Settings) -> None:
    raise SystemExit("the dispatcher is not built yet")
