"""What ``/healthz`` reads about the dispatcher: whether its claim loop still ticks, and the database
errors that the claim loop and the result writer met in a row (both back off on them the same way)."""

from __future__ import annotations

import asyncio
import time

import structlog

log = structlog.get_logger(__name__)

DB_BACKOFF_MAX = 5.0
UNHEALTHY_AFTER_ERRORS = 5


class LoopHealth:
    def __init__(self, poll_interval: float) -> None:
        self.stall_after = max(30.0, 20 * poll_interval)  # a loop this long without a tick is stalled
        self.last_tick = time.monotonic()
        self.last_error: str | None = None
        self.consecutive_errors = 0

    def tick(self) -> None:
        self.last_tick = time.monotonic()

    def database_ok(self) -> None:
        self.consecutive_errors = 0

    def database_error(self, what: str, exc: Exception) -> float:
        """Count a failed claim or write; returns how long to back off before trying again."""
        self.consecutive_errors += 1
        self.last_error = f"{what}: {type(exc).__name__}"
        log.warning("dispatcher_db_error", what=what, error=repr(exc), consecutive=self.consecutive_errors)
        return min(DB_BACKOFF_MAX, 0.2 * 2 ** self.consecutive_errors)

    def problem(self, loop: asyncio.Task[None] | None) -> str | None:
        """``None`` when healthy, else a short reason (``/healthz`` answers 503 with it)."""
        if loop is None:
            return "dispatcher not started"
        if loop.done():
            exc = None if loop.cancelled() else loop.exception()
            return f"dispatcher loop stopped: {exc!r}" if exc else "dispatcher loop stopped"
        stalled = time.monotonic() - self.last_tick
        if stalled > self.stall_after:
            return f"dispatcher loop has not ticked for {stalled:.0f}s"
        if self.consecutive_errors >= UNHEALTHY_AFTER_ERRORS:
            return f"dispatcher database errors: {self.last_error}"
        return None
