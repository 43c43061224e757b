"""Request budgets through the ``limits`` library: in memory, or in Redis when configured so that several
API processes share one budget.

Three budgets (fixed windows):
- ``MANAGEMENT`` per account (``MAILHOOKS_RATE_LIMIT``): the Mailgun, Kirim and native management calls;
- ``INGEST`` per account (``MAILHOOKS_INGEST_RATE_LIMIT``): ``POST /v1/events``, sized for mail servers
  posting one event per request;
- ``AUTH_FAILURES`` per client address (``MAILHOOKS_AUTH_FAILURE_LIMIT``): wrong keys, so that keys
  cannot be guessed at line rate.

Redis is a dependency that can hang or vanish; the API must not. Every call to it has one deadline for
the whole operation (and the client's own socket timeouts, so a frozen server does not collect our
connections). When a call fails or times out the limiter counts in this process's memory instead and
leaves Redis alone for a cool-down, then lets one request probe it: requests never wait on a dead Redis
more than once per cool-down, and never get refused because of it (each process still enforces the
limit on its own, so the effective budget is the limit times the number of processes meanwhile).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.storage import storage_from_string

log = structlog.get_logger(__name__)

T = TypeVar("T")

# The whole limiter call (one or two Redis round trips on loopback or a LAN: well under a millisecond)
# must finish within this, or the request goes on without the shared budget.
REDIS_DEADLINE = 0.25
# After a failure, Redis is not asked again for this long (then one request probes it).
REDIS_COOL_DOWN = 5.0


class Budget(enum.StrEnum):
    MANAGEMENT = "management"
    INGEST = "ingest"
    AUTH_FAILURES = "auth-failures"


class Backend(enum.StrEnum):
    """Where the budgets are counted, as ``/healthz`` reports it."""

    MEMORY = "memory"
    REDIS = "redis"
    REDIS_UNAVAILABLE = "redis-unavailable (counting per process)"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after: float


class RateLimiter:
    def __init__(self, rates: str | Mapping[Budget, str], redis_url: str | None = None,
                 deadline: float = REDIS_DEADLINE, cool_down: float = REDIS_COOL_DOWN) -> None:
        """``rates``: a rate string (``"300/minute"``) for every budget, or one per budget."""
        if isinstance(rates, str):
            rates = {budget: rates for budget in Budget}
        self.items: dict[Budget, RateLimitItem] = {budget: parse(rate) for budget, rate in rates.items()}
        self.deadline = deadline
        self.cool_down = cool_down
        self.local: Storage = MemoryStorage()
        self.shared: Storage | None = None
        if redis_url:
            scheme_url = redis_url if redis_url.startswith("async+") else "async+" + redis_url
            # The client's own timeouts too: a command cancelled by our deadline must not leave a
            # connection waiting on a frozen server behind it.
            self.shared = storage_from_string(  # type: ignore[assignment]
                scheme_url, connect_timeout=deadline, stream_timeout=deadline)
        self._shared_down_until = 0.0  # monotonic; 0 while Redis answers
        self._probing = False

    @property
    def backend(self) -> Backend:
        if self.shared is None:
            return Backend.MEMORY
        return Backend.REDIS if self._shared_down_until == 0.0 else Backend.REDIS_UNAVAILABLE

    async def hit(self, key: str, budget: Budget = Budget.MANAGEMENT) -> Verdict:
        """Count one request of ``key`` against ``budget``."""
        item = self.items[budget]
        name = item.key_for("mailhooks", budget.value, key)

        async def count(storage: Storage) -> Verdict:
            used = await storage.incr(name, item.get_expiry())
            if used <= item.amount:
                return Verdict(True, item.amount, item.amount - used, 0.0)
            return Verdict(False, item.amount, 0, await self._retry_after(storage, name))

        return await self._call(count)

    async def peek(self, key: str, budget: Budget) -> Verdict:
        """Whether ``key`` still has budget left, without counting anything."""
        item = self.items[budget]
        name = item.key_for("mailhooks", budget.value, key)

        async def look(storage: Storage) -> Verdict:
            used = await storage.get(name)
            if used < item.amount:
                return Verdict(True, item.amount, item.amount - used, 0.0)
            return Verdict(False, item.amount, 0, await self._retry_after(storage, name))

        return await self._call(look)

    async def check(self) -> Backend:
        """Ask Redis now (within the deadline) and say where budgets are counted: for ``/healthz``."""
        if self.shared is not None and not self._probing:
            try:
                async with asyncio.timeout(self.deadline):
                    answered = await self.shared.check()
                if not answered:
                    raise ConnectionError("Redis did not answer PING")
            except Exception as exc:
                self._down(exc)
            else:
                self._up()
        return self.backend

    @staticmethod
    async def _retry_after(storage: Storage, name: str) -> float:
        return max(0.0, await storage.get_expiry(name) - time.time())

    async def _call(self, work: Callable[[Storage], Awaitable[T]]) -> T:
        shared = self.shared
        if shared is None:
            return await work(self.local)
        probing = False
        if self._shared_down_until:
            if time.monotonic() < self._shared_down_until or self._probing:
                return await work(self.local)
            self._probing = probing = True  # one request at a time finds out whether Redis is back
        try:
            async with asyncio.timeout(self.deadline):
                result = await work(shared)
        except Exception as exc:  # the limiter's backend being down must not take the API down
            self._down(exc)
            return await work(self.local)
        finally:
            if probing:
                self._probing = False
        self._up()
        return result

    def _down(self, exc: Exception) -> None:
        if self._shared_down_until == 0.0:
            log.warning("rate_limit_backend_unavailable", error=repr(exc), deadline=self.deadline,
                        retry_in=self.cool_down)
        self._shared_down_until = time.monotonic() + self.cool_down

    def _up(self) -> None:
        if self._shared_down_until:
            log.info("rate_limit_backend_recovered")
            self._shared_down_until = 0.0
