"""What the edges share: settings, storage, the core services, the limiter and the HTTP sender."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from mailhooks.api.ratelimit import RateLimiter
from mailhooks.config import Settings
from mailhooks.core.targets import TargetPolicy
from mailhooks.core.webhooks import Subscriptions
from mailhooks.db.store import Store
from mailhooks.sending import Sender


@dataclass
class Services:
    settings: Settings
    store: Store
    policy: TargetPolicy
    subscriptions: Subscriptions
    limiter: RateLimiter
    sender: Sender | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def require_sender(self) -> Sender:
        if self.sender is None:
            self.sender = Sender(self.policy, timeout=self.settings.delivery_timeout)
        return self.sender


async def services(request: Request) -> Services:
    """Async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per request."""
    return request.app.state.services  # type: ignore[no-any-return]
