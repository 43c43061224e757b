"""Per-account request limits through the ``limits`` library (memory, or Redis when configured so that
several API processes share one budget)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from limits import parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after: float


class RateLimiter:
    def __init__(self, rate: str, redis_url: str | None = None) -> None:
        self.item = parse(rate)
        self.storage: Storage
        if redis_url:
            scheme_url = redis_url if redis_url.startswith("async+") else "async+" + redis_url
            self.storage = storage_from_string(scheme_url)  # type: ignore[assignment]
        else:
            self.storage = MemoryStorage()
        self.limiter = FixedWindowRateLimiter(self.storage)

    async def hit(self, key: str) -> Verdict:
        try:
            allowed = await self.limiter.hit(self.item, "mailhooks", key)
            stats = await self.limiter.get_window_stats(self.item, "mailhooks", key)
        except Exception as exc:  # the limiter's backend being down must not take the API down
            log.warning("rate_limit_backend_unavailable", error=str(exc))
            return Verdict(True, self.item.amount, self.item.amount, 0.0)
        return Verdict(allowed, self.item.amount, max(0, stats.remaining), max(0.0, stats.reset_time - time.time()))
