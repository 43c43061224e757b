"""One attempt per claimed delivery: claimed -> sent -> outcome.

The lease is checked first: a row whose lease would run out before its send could finish is handed
back instead of being sent, so a healthy worker never sends a row another worker may already have
re-claimed. Then the payload is signed and POSTed, the send result becomes an ``Outcome`` by the pure
rules of ``core.outcomes``, is counted in the metrics, and goes to the result writer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from functools import partial
from typing import Any, Protocol

import structlog

from mailhooks import metrics, tracing
from mailhooks.config import Settings
from mailhooks.core.deliveries import Claimed, DeliveryStatus
from mailhooks.core.masking import masked_headers
from mailhooks.core.message_ids import message_id
from mailhooks.core.outcomes import attempt_outcome
from mailhooks.core.payloads import PreparedEvent
from mailhooks.core.retry import FailureKind
from mailhooks.core.subscriptions import DEFAULT_SETTINGS
from mailhooks.core.targets import TargetPolicy
from mailhooks.sending import AnySender, open_sender
from mailhooks.worker.writer import ResultWriter

log = structlog.get_logger(__name__)

# labels() takes a lock and builds a key on every call: the children are kept here.
_OUTCOME_COUNTERS: dict[str, Any] = {}
_FAILURE_COUNTERS: dict[FailureKind, Any] = {}


def with_static_headers(ours: dict[str, str], static: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The headers to send (ours, then the subscription's static ones, never replacing one of ours) and
    the same headers as recorded with the attempt (the static secrets masked: ``core.masking``)."""
    if not static:
        return ours, ours
    taken = {name.lower() for name in ours}
    extra = {name: value for name, value in static.items() if name.lower() not in taken}
    return {**ours, **extra}, {**ours, **masked_headers(extra)}


class MessageIdKeys(Protocol):
    async def message_id_key(self) -> bytes:
        """The installation's key for ``webhook-id`` (``core.message_ids``)."""
        ...


class Attempts:
    def __init__(self, settings: Settings, policy: TargetPolicy, writer: ResultWriter, keys: MessageIdKeys
                 ) -> None:
        self.settings = settings
        self.keys = keys
        self.policy = policy
        self.writer = writer
        self.sender: AnySender | None = None  # made by ``start``, inside the running loop
        self.message_id_key = b""  # loaded before the first claim (load_message_id_key)
        # Send only if the lease outlives the send by this much: otherwise another worker may re-claim it.
        self.lease_margin = min(settings.delivery_timeout, settings.lease_seconds / 2)
        self.stopping = False  # hand back every job not sent yet
        self.sent = 0  # attempts made by this process (logged at stop: shows how work was shared)

    async def load_message_id_key(self) -> None:
        """The installation's ``webhook-id`` key, read once (the first time the database answers)."""
        if not self.message_id_key:
            self.message_id_key = await self.keys.message_id_key()

    def start(self) -> None:
        self.sender = open_sender(self.settings.http_client, self.policy, timeout=self.settings.delivery_timeout,
                                  limit=max(1, self.settings.worker_concurrency))

    async def close(self) -> None:
        if self.sender is not None:
            await self.sender.close()

    async def send(self, job: Claimed, prepared: PreparedEvent) -> None:
        """Attempt ``job`` and hand its outcome to the writer, or hand the job back unsent (stopping, a
        lease too short, cancelled, or a bug: a row must not stay leased until expiry silently)."""
        assert self.sender is not None
        writer = self.writer
        try:
            own = job.settings
            margin = self.lease_margin if own is DEFAULT_SETTINGS or own.timeout_seconds is None else min(
                float(own.timeout_seconds), self.settings.lease_seconds / 2)
            if self.stopping or time.time() + margin > job.lease_expires_at:
                writer.release(job.id)
                return
            body, headers = prepared.render(job.signing_key, message_id(self.message_id_key, job.id),
                                            previous_key=job.previous_signing_key,
                                            previous_until=job.previous_key_until)
            tracer = tracing.TRACER  # traces on: the send is a span, its context the traceparent header
            if own is DEFAULT_SETTINGS:
                result = await (self.sender.post(job.url, body, headers) if tracer is None
                                else tracer.attempt(self.sender.post, job, body, headers))
                recorded, schedule = headers, self.settings.retry_schedule
            else:
                sent, recorded = with_static_headers(headers, own.headers)
                post = partial(self.sender.post, deadline=own.timeout_seconds)
                result = await (post(job.url, body, sent) if tracer is None else tracer.attempt(post, job, body, sent))
                schedule = own.retry_schedule or self.settings.retry_schedule
            self.sent += 1
            outcome = attempt_outcome(job, result, recorded, now=time.time(), schedule=schedule)
            metrics.ATTEMPT_SECONDS.observe(result.duration_ms / 1000)
            label = "retry" if outcome.status == DeliveryStatus.PENDING else outcome.status
            counter = _OUTCOME_COUNTERS.get(label)
            if counter is None:
                counter = _OUTCOME_COUNTERS[label] = metrics.DELIVERIES.labels(label)
            counter.inc()
            if result.failure is not None:
                failures = _FAILURE_COUNTERS.get(result.failure)
                if failures is None:
                    failures = _FAILURE_COUNTERS[result.failure] = metrics.ATTEMPT_FAILURES.labels(result.failure.value)
                failures.inc()
            writer.add(outcome)
        except asyncio.CancelledError:
            writer.release(job.id)
            raise
        except Exception as exc:
            log.exception("delivery_crashed", delivery=job.id, error=repr(exc))
            writer.release(job.id)
