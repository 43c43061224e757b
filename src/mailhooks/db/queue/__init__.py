"""The delivery queue: batch claims under a lease, batched result writes, release, retention and the
queue figures, as one interface with a PostgreSQL and a SQLite implementation side by side.

Every hot path is a constant number of statements per *batch*, never per delivery (see each backend's
module for how). A claimed row is ``delivering`` and its lease expiry is *also* its ``next_attempt_at``:
"due" is then a single range scan over the partial index ``ix_deliveries_queue`` for new work and
expired leases alike. Result writes only touch rows their owner still holds, so a worker that lost its
lease cannot overwrite the state another worker recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from mailhooks.core.deliveries import Claimed, Outcome
from mailhooks.db.database import Database
from mailhooks.db.queue.postgres import PostgresQueue
from mailhooks.db.queue.sqlite import SqliteQueue


class DeliveryQueue(Protocol):
    async def claim(self, owner: str, limit: int, lease_seconds: float,
                    exclude_webhooks: Sequence[int] = (), head: int | None = None) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries (new, retry-due, or with an expired lease) to ``owner``.

        ``exclude_webhooks`` skips those webhooks' rows. With ``head``, only the first ``head`` due rows
        are looked at, so that the skipping costs a bounded scan whatever the size of the backlog.
        """
        ...

    async def record(self, owner: str, outcomes: Sequence[Outcome], releases: Sequence[int] = (),
                     disable_after: float | None = None) -> None:
        """Write a batch of results (and hand back ``releases`` unsent) in one transaction, with the
        webhooks' health: a success clears a failing streak, a failure starts one, and a webhook failing
        for ``disable_after`` seconds (or given a ``disable_reason``) is disabled."""
        ...

    async def release_owned(self, owner: str) -> int:
        """Hand every row this owner still holds back to the queue (graceful shutdown)."""
        ...

    async def purge(self, cutoff: float, batch: int = 1000) -> int:
        """Delete one batch of finished deliveries (with their attempts) created before ``cutoff``, oldest
        first, and the events they leave without a delivery; once those run short, other events older than
        ``cutoff`` that no delivery refers to. One short transaction. Returns how many rows went."""
        ...

    def retention_turn(self) -> AbstractAsyncContextManager[bool]:
        """For one retention pass: whether this process is the one purging (one at a time)."""
        ...

    async def queue_stats(self) -> tuple[int, float | None]:
        """(due deliveries, the oldest due time) — for /metrics."""
        ...


def delivery_queue(db: Database) -> DeliveryQueue:
    """The queue for this database's backend."""
    return PostgresQueue(db) if db.postgres else SqliteQueue(db)


__all__ = ["DeliveryQueue", "PostgresQueue", "SqliteQueue", "delivery_queue"]
