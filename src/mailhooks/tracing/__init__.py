"""OpenTelemetry traces, off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``…_TRACES_ENDPOINT``) is set.

Off is the default and costs nothing: this module imports no OpenTelemetry package, ``TRACER`` stays
``None``, and every traced place in the hot path is one ``None`` check (``tracing.TRACER is None``) before
doing exactly what it did without traces. On, ``mailhooks.tracing.spans`` (the SDK, the OTLP/HTTP
exporter) is loaded once and ``TRACER`` is its ``Tracer``.

What is traced, linked per event (README "Traces"):

- ``POST /v1/events``: the request (a server span, continuing the client's ``traceparent`` if any), whose
  context is stored with each event it brings (``events.traceparent``), and the storage transaction
  (group commit: one span per transaction, linked to every request it carries);
- the dispatcher's claims and result writes (batches: linked to each delivery's event or attempt);
- each attempt (the HTTP send), a child of its event's ingest request, whose context goes to the
  receiver as the W3C ``traceparent`` header.

Where it sits: it imports only ``config`` and ``core``, so that ``db``, ``api`` and ``worker`` may use it
(``tests/test_layers.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from mailhooks.tracing.spans import Tracer

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

TRACER: Tracer | None = None  # None: traces are off (the default)

Q = TypeVar("Q")


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces: an OTLP endpoint is set and the SDK is not disabled."""
    env = os.environ if environ is None else environ
    if (env.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
        return False
    return any((env.get(name) or "").strip() for name in ENDPOINT_VARIABLES)


def enable_from_env(environ: Mapping[str, str] | None = None) -> Tracer | None:
    """Turn traces on, exported over OTLP/HTTP, if the environment asks for them (and they are not on
    already: a test's own provider is kept). Called once per process before its app or dispatcher is built."""
    if TRACER is None and wanted(environ):
        from mailhooks.tracing.spans import otlp_provider

        return enable(otlp_provider())
    return TRACER


def enable(provider: TracerProvider) -> Tracer:
    """Traces on, through ``provider`` (tests pass one with the SDK's in-memory exporter)."""
    global TRACER
    from mailhooks.tracing.spans import Tracer

    TRACER = Tracer(provider)
    return TRACER


def disable() -> None:
    """Traces off again (tests); what was recorded is flushed first."""
    global TRACER
    if TRACER is not None:
        TRACER.flush()
    TRACER = None


FLUSH_SECONDS = 5.0  # at shutdown, a collector that does not answer delays the exit this long at most


def flush() -> None:
    """Export what is buffered (at process shutdown; the SDK also flushes at exit)."""
    if TRACER is not None:
        TRACER.flush(FLUSH_SECONDS)


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span (the ingest request's), to store with its events."""
    return None if TRACER is None else TRACER.traceparent()


def traced_queue(queue: Q) -> Q:
    """The dispatcher's delivery queue, with claim and record spans while traces are on."""
    return queue if TRACER is None else TRACER.traced_queue(queue)


def instrument(app: Any) -> None:
    """Add the ingest request span to the ASGI ``app`` (a FastAPI app) while traces are on."""
    if TRACER is not None:
        TRACER.instrument(app)
