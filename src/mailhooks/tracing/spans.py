"""The spans themselves, with the OpenTelemetry SDK: imported only when traces are on (``mailhooks.tracing``).

One trace per ingest request: the request span is the parent of every attempt of every delivery of the
events it brought, across processes and retries, because its context is stored with each event
(``events.traceparent``) and read back by the claim. Batches (a group-commit transaction, a claim, a
result write) serve many events at once, so they are spans of their own with a link to each one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from mailhooks.core.deliveries import Claimed, Outcome
from mailhooks.core.events import NewEvent

SERVICE_NAME = "mailhooks"
INGEST_PATH = "/v1/events"
# A claim or a result write links every delivery of its batch (MAILHOOKS_WORKER_BATCH, up to 1000 results
# per write); the SDK's default would keep only the first 128 links. OTEL_SPAN_LINK_COUNT_LIMIT overrides.
MAX_LINKS = 1000
# Deliveries whose latest span (claim, then attempt) this process remembers until their result is written.
# Only a result that is never written (a lost lease, a dropped row) leaves one behind: past this many,
# they are forgotten at once (those writes then miss their links, nothing else).
MAX_REMEMBERED = 100_000

Q = TypeVar("Q")


class Answer(Protocol):
    """What the attempt span reads of a send result (``sending.SendResult``)."""

    @property
    def status_code(self) -> int | None: ...

    @property
    def failure(self) -> Any: ...


R = TypeVar("R", bound=Answer)


def otlp_provider() -> TracerProvider:
    """The SDK configured from the standard ``OTEL_*`` variables, exporting in batches over OTLP/HTTP
    (``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``). ``service.name`` is ``mailhooks`` unless
    ``OTEL_SERVICE_NAME`` (or ``OTEL_RESOURCE_ATTRIBUTES``) says otherwise."""
    named = "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "") or os.environ.get("OTEL_SERVICE_NAME")
    limits = SpanLimits(max_links=None if os.environ.get("OTEL_SPAN_LINK_COUNT_LIMIT") else MAX_LINKS)
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": SERVICE_NAME}),
                              span_limits=limits)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def format_traceparent(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def _as_parent(context: SpanContext | None) -> Context:
    """A context whose span is ``context`` (or none: a root), never the caller's current one: batch work
    runs in tasks that inherited some request's context, which must not become their parent."""
    return trace.set_span_in_context(NonRecordingSpan(context), Context()) if context else Context()


class Tracer:
    """Every span mailhooks makes. One per process (``mailhooks.tracing.TRACER``)."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("mailhooks")
        self.propagator = TraceContextTextMapPropagator()
        self.latest: dict[int, SpanContext] = {}  # delivery id -> its claim's, then its attempt's span

    def flush(self, timeout: float = 30.0) -> None:
        self.provider.force_flush(int(timeout * 1000))

    def span_context(self, traceparent: str | None) -> SpanContext | None:
        """A stored or received ``traceparent`` as a span context (``None`` if absent or malformed)."""
        if not traceparent:
            return None
        context = trace.get_current_span(self.propagator.extract({"traceparent": traceparent}, Context()))
        found = context.get_span_context()
        return found if found.is_valid else None

    def traceparent(self) -> str | None:
        found = trace.get_current_span().get_span_context()
        return format_traceparent(found) if found.is_valid else None

    # ------------------------------------------------------------------ ingest
    def instrument(self, app: Any) -> None:
        app.add_middleware(IngestRequestSpans, tracer=self)

    async def ingest_transaction(self, write: Callable[[Sequence[NewEvent]], Awaitable[list[bool]]],
                                 events: Sequence[NewEvent]) -> list[bool]:
        """One span per storage transaction, linked to each request whose events it stores; the child of
        that request when it stores one request's events only (the usual case below saturation)."""
        requests = {tp: found for tp in dict.fromkeys(e.traceparent for e in events if e.traceparent)
                    if (found := self.span_context(tp)) is not None}
        parent = next(iter(requests.values())) if len(requests) == 1 else None
        with self.tracer.start_as_current_span(
                "mailhooks.ingest.transaction", context=_as_parent(parent),
                links=[Link(found) for found in requests.values()],
                attributes={"mailhooks.events": len(events), "mailhooks.requests": len(requests)}) as span:
            flags = await write(events)
            span.set_attribute("mailhooks.events.new", sum(flags))
            return flags

    # ------------------------------------------------------------------ the dispatcher
    def traced_queue(self, queue: Q) -> Q:
        return cast(Q, TracedQueue(queue, self))

    def claimed(self, batch: Sequence[Claimed], started_ns: int, error: BaseException | None = None) -> None:
        """The span of one claim that returned rows (or failed), made once it is over: empty polls (one
        every MAILHOOKS_POLL_INTERVAL) leave no span. Linked to each delivery's ingest request."""
        contexts: dict[str, SpanContext | None] = {}
        links: list[Link] = []
        for job in batch:
            if job.traceparent:
                if job.traceparent not in contexts:
                    contexts[job.traceparent] = self.span_context(job.traceparent)
                found = contexts[job.traceparent]
                if found is not None:
                    links.append(Link(found, {"mailhooks.delivery.id": job.id}))
        span = self.tracer.start_span("mailhooks.claim", context=Context(), links=links, start_time=started_ns,
                                      attributes={"mailhooks.deliveries": len(batch)})
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()
        if len(self.latest) > MAX_REMEMBERED:
            self.latest.clear()
        claim = span.get_span_context()
        for job in batch:
            self.latest[job.id] = claim

    async def attempt(self, post: Callable[[str, bytes, dict[str, str]], Awaitable[R]], job: Claimed,
                      body: bytes, headers: dict[str, str]) -> R:
        """The HTTP send of one attempt: a client span, child of the event's ingest request and linked to
        the claim; its context goes to the receiver as ``traceparent`` (and is stored with the attempt's
        request headers). Only the target's host and port are recorded: a URL's path or query may hold a
        receiver's secret."""
        target = urlsplit(job.url)
        attributes: dict[str, Any] = {
            "http.request.method": "POST", "server.address": target.hostname or "",
            "server.port": target.port or (443 if target.scheme == "https" else 80),
            "mailhooks.delivery.id": job.id, "mailhooks.event.id": job.event_id,
            "mailhooks.attempt.number": job.attempts + 1,
        }
        claim = self.latest.get(job.id)
        span = self.tracer.start_span("mailhooks.attempt", context=_as_parent(self.span_context(job.traceparent)),
                                      kind=SpanKind.CLIENT, links=[Link(claim)] if claim else None,
                                      attributes=attributes)
        self.propagator.inject(headers, context=trace.set_span_in_context(span, Context()))
        self.latest[job.id] = span.get_span_context()
        with trace.use_span(span, end_on_exit=True):
            result = await post(job.url, body, headers)
            if result.status_code is not None:
                span.set_attribute("http.response.status_code", result.status_code)
            if result.failure is not None:
                span.set_attribute("error.type", str(getattr(result.failure, "value", result.failure)))
            if result.status_code is None or result.status_code >= 300:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {result.status_code}" if result.status_code
                                       else "no answer"))
            return result

    async def record(self, queue: Any, owner: str, outcomes: Sequence[Outcome], releases: Sequence[int],
                     disable_after: float | None) -> None:
        """One result write (a batch): linked to each delivery's attempt (or claim, if it was not sent)."""
        for delivery_id in releases:
            self.latest.pop(delivery_id, None)
        if not outcomes:
            await queue.record(owner, outcomes, releases, disable_after)
            return
        links = [Link(found, {"mailhooks.delivery.id": o.delivery_id}) for o in outcomes
                 if (found := self.latest.get(o.delivery_id)) is not None]
        with self.tracer.start_as_current_span(
                "mailhooks.record", context=Context(), links=links,
                attributes={"mailhooks.deliveries": len(outcomes), "mailhooks.releases": len(releases)}):
            await queue.record(owner, outcomes, releases, disable_after)
        for outcome in outcomes:  # written: forgotten (a refused batch is written again, in parts, with links)
            self.latest.pop(outcome.delivery_id, None)


class TracedQueue:
    """The dispatcher's ``DeliveryQueue`` with claim and record spans; everything else passes through."""

    def __init__(self, queue: Any, tracer: Tracer) -> None:
        self._queue = queue
        self._tracer = tracer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)

    async def claim(self, owner: str, limit: int, lease_seconds: float, exclude_webhooks: Sequence[int] = (),
                    head: int | None = None) -> list[Claimed]:
        started = time.time_ns()
        try:
            batch: list[Claimed] = await self._queue.claim(owner, limit, lease_seconds, exclude_webhooks, head)
        except Exception as exc:
            self._tracer.claimed((), started, exc)
            raise
        if batch:
            self._tracer.claimed(batch, started)
        return batch

    async def record(self, owner: str, outcomes: Sequence[Outcome], releases: Sequence[int] = (),
                     disable_after: float | None = None) -> None:
        await self._tracer.record(self._queue, owner, outcomes, releases, disable_after)


class IngestRequestSpans:
    """ASGI middleware: a server span around each ``POST /v1/events``, continuing the client's W3C
    ``traceparent`` if it sent one. The handler stores this span's context with the events."""

    def __init__(self, app: Any, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != INGEST_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
                   if name in (b"traceparent", b"tracestate")}
        parent = self.tracer.propagator.extract(carrier, Context())
        with self.tracer.tracer.start_as_current_span(
                f"POST {INGEST_PATH}", context=parent, kind=SpanKind.SERVER,
                attributes={"http.request.method": "POST", "http.route": INGEST_PATH}) as span:

            async def send_traced(message: Any) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, send_traced)
