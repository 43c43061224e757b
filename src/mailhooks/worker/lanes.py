"""Per-URL lanes: claimed deliveries wait in their URL's queue, and up to ``MAILHOOKS_PER_URL_CONCURRENCY``
lane tasks per URL send them one after another. A slow or hanging receiver therefore holds at most its
own share of the in-flight budget; its webhooks are reported as saturated so that claims skip their rows
and other endpoints' deliveries keep going out.

A task per lane, not per delivery: task creation and semaphore hand-offs showed up at about a tenth of
the drain profile.
"""

from __future__ import annotations

import asyncio
import collections
from collections import Counter
from collections.abc import Awaitable, Callable

from mailhooks import metrics
from mailhooks.core.deliveries import Claimed
from mailhooks.core.payloads import PreparedEvent

Job = tuple[Claimed, PreparedEvent]


class Lanes:
    def __init__(self, per_url: int, low_water: int, send: Callable[[Claimed, PreparedEvent], Awaitable[None]],
                 release: Callable[[int], None], wake_claims: Callable[[], None]) -> None:
        """``send`` makes the attempt and hands its outcome (or the job, unsent) to the writer; ``release``
        hands back a job a cancelled lane never sent; ``wake_claims`` is called whenever a job leaves and
        no more than ``low_water`` are left in flight (room for another claim)."""
        self.per_url = per_url
        self.low_water = low_water
        self._send = send
        self._release = release
        self._wake_claims = wake_claims
        self.in_flight: dict[int, Claimed] = {}  # claimed and not finished: queued for a lane or being sent
        self.tasks: set[asyncio.Task[None]] = set()
        self._queues: dict[str, collections.deque[Job]] = {}
        self._lanes: dict[str, int] = {}  # lane tasks per URL
        self._load: Counter[str] = Counter()  # in flight per URL
        self._hooks: dict[str, set[int]] = {}  # the webhooks whose jobs are in flight, per URL

    def start(self, jobs: list[Job]) -> None:
        """Queue each job behind its URL, starting a lane for it if the URL has fewer than ``per_url``."""
        for job in jobs:
            claimed = job[0]
            url = claimed.url
            self._load[url] += 1
            self._hooks.setdefault(url, set()).add(claimed.webhook_id)
            self.in_flight[claimed.id] = claimed
            queue = self._queues.get(url)
            if queue is None:
                queue = self._queues[url] = collections.deque()
            queue.append(job)
            lanes = self._lanes.get(url, 0)
            if lanes < self.per_url:
                self._lanes[url] = lanes + 1
                lane = asyncio.create_task(self._lane(url, queue))
                self.tasks.add(lane)
                lane.add_done_callback(self.tasks.discard)
        metrics.IN_FLIGHT.set(len(self.in_flight))

    def saturated(self) -> list[int]:
        """The webhooks of every URL at its cap: the next claims skip their rows."""
        hooks: set[int] = set()
        for url, load in self._load.items():
            if load >= self.per_url:
                hooks |= self._hooks.get(url, set())
        return sorted(hooks)

    async def stop(self, grace: float) -> None:
        """Let the lanes finish for ``grace`` seconds, then cancel them (their jobs are released)."""
        tasks = list(self.tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _lane(self, url: str, queue: collections.deque[Job]) -> None:
        """Send this URL's queued jobs one at a time until none is left; a cancelled lane hands its
        queued jobs back (``Dispatcher.stop`` releases whatever is still leased anyway)."""
        try:
            while queue:
                claimed, prepared = queue.popleft()
                try:
                    await self._send(claimed, prepared)
                finally:
                    self._done(claimed)
        except asyncio.CancelledError:
            while queue:
                claimed, _ = queue.popleft()
                self._release(claimed.id)
                self._done(claimed)
            raise
        finally:
            lanes = self._lanes[url] - 1
            if lanes:
                self._lanes[url] = lanes
            else:
                del self._lanes[url]
                if not queue and self._queues.get(url) is queue:
                    del self._queues[url]

    def _done(self, job: Claimed) -> None:
        self.in_flight.pop(job.id, None)
        self._load[job.url] -= 1
        if self._load[job.url] <= 0:
            del self._load[job.url]
            self._hooks.pop(job.url, None)
        metrics.IN_FLIGHT.set(len(self.in_flight))
        if len(self.in_flight) <= self.low_water:
            self._wake_claims()
