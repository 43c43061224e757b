"""Host name lookups for the target policy: cached, de-duplicated, bounded, with a deadline.

Why not ``loop.getaddrinfo`` on every connection: it runs in the event loop's small default thread
pool, so under load the lookups queue behind each other and the queueing counted against the
deadline; a slow resolver turned into deliveries failed for "cannot be resolved". Here:

- answers are cached for ``ttl`` seconds (``getaddrinfo`` does not tell the record's TTL, so a short
  fixed one), failures for ``negative_ttl`` seconds only, so a resolver that recovers is used at once;
- concurrent lookups of one host share a single query;
- lookups run in a thread pool of their own, and a lookup is handed to it only when a thread is free
  (a slot is given back when its thread returns, even after its deadline passed), so the deadline
  counts the lookup itself, never the wait for a thread.

The cache holds addresses only, never a verdict: the caller applies its policy on every use.
Plain getaddrinfo keeps ``/etc/hosts`` and the system's resolver configuration in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOOKUP_TIMEOUT = 5.0
LOOKUP_CONCURRENCY = 16
POSITIVE_TTL = 30.0
NEGATIVE_TTL = 1.0
MAX_ENTRIES = 10_000


class LookupFailed(Exception):
    """The name has no address right now (the resolver failed or answered "no such name")."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host} cannot be resolved: {reason}")
        self.host = host
        self.reason = reason


class LookupTimedOut(LookupFailed):
    """The resolver did not answer within the deadline."""


@dataclass(frozen=True, slots=True)
class _Entry:
    expires: float
    addresses: tuple[IPAddress, ...]
    failure: LookupFailed | None


def _getaddrinfo(host: str) -> tuple[IPAddress, ...]:
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
    return tuple(found)


class HostResolver:
    """One per process (per event loop); ``lookups`` counts queries actually made (not cache hits)."""

    def __init__(self, *, timeout: float = LOOKUP_TIMEOUT, concurrency: int = LOOKUP_CONCURRENCY,
                 ttl: float = POSITIVE_TTL, negative_ttl: float = NEGATIVE_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.clock = clock
        self.lookups = 0
        self._cache: dict[str, _Entry] = {}
        self._pending: dict[str, asyncio.Future[tuple[IPAddress, ...]]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def addresses(self, host: str) -> tuple[IPAddress, ...]:
        """The host's addresses (at least one), or ``LookupFailed`` / ``LookupTimedOut``."""
        key = host.lower()
        entry = self._cache.get(key)
        if entry is not None and entry.expires > self.clock():
            if entry.failure is not None:
                raise type(entry.failure)(entry.failure.host, entry.failure.reason)
            return entry.addresses
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # shared lookups and thread slots belong to one event loop
            self._loop, self._pending, self._slots = loop, {}, None
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(self._lookup(key))
            pending.add_done_callback(lambda done: self._settled(key, done))
        # One waiter giving up (its delivery timed out) must not cancel the others' shared lookup.
        return await asyncio.shield(pending)

    def _settled(self, key: str, done: asyncio.Future[tuple[IPAddress, ...]]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]
        if not done.cancelled():
            done.exception()  # retrieved here, so a lookup nobody waits for any more is not logged

    async def _lookup(self, host: str) -> tuple[IPAddress, ...]:
        try:
            addresses = await self._query(host)
        except LookupFailed as exc:
            self._store(host, _Entry(self.clock() + self.negative_ttl, (), exc))
            raise
        self._store(host, _Entry(self.clock() + self.ttl, addresses, None))
        return addresses

    def _store(self, host: str, entry: _Entry) -> None:
        if len(self._cache) >= MAX_ENTRIES:
            now = self.clock()
            self._cache = {k: e for k, e in self._cache.items() if e.expires > now}
            if len(self._cache) >= MAX_ENTRIES:
                self._cache.clear()
        self._cache[host] = entry

    async def _query(self, host: str) -> tuple[IPAddress, ...]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="mailhooks-dns")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        slots = self._slots
        await slots.acquire()  # waiting for a free thread is not part of the deadline
        loop = asyncio.get_running_loop()
        try:
            job: Future[tuple[IPAddress, ...]] = self._executor.submit(_getaddrinfo, host)
        except BaseException:
            slots.release()
            raise

        def give_back(_: Future[tuple[IPAddress, ...]]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody needs the slot
                loop.call_soon_threadsafe(slots.release)

        job.add_done_callback(give_back)
        self.lookups += 1
        try:
            addresses = await asyncio.wait_for(asyncio.wrap_future(job), self.timeout)
        except TimeoutError as exc:
            raise LookupTimedOut(host, f"no answer within {self.timeout:g}s") from exc
        except socket.gaierror as exc:
            raise LookupFailed(host, exc.strerror or str(exc)) from exc
        except (OSError, UnicodeError, ValueError) as exc:
            raise LookupFailed(host, str(exc) or type(exc).__name__) from exc
        if not addresses:
            raise LookupFailed(host, "no address")
        return addresses

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            self._slots = None
