"""Traces (README "Traces"), on both backends, with real receivers on 127.0.0.1:

- in this process: the real app with its dispatcher (``InProcessApp(dispatcher=True)``) and the SDK's
  in-memory exporter, so each span, parent and link can be read: an ingested event gives the request and
  transaction spans, a claim, an attempt per send and a result write, all tied to the request, and the
  receiver gets the attempt's context as ``traceparent``;
- real ``mailhooks serve`` processes: with ``OTEL_EXPORTER_OTLP_ENDPOINT`` the spans arrive over OTLP/HTTP
  at a collector on 127.0.0.1; without it no ``traceparent`` is sent, and importing the server loads
  nothing of OpenTelemetry.
"""

from __future__ import annotations

import gzip
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from mailhooks import tracing
from mailhooks.config import Settings
from mailhooks.db.migrate import upgrade
from tests.conftest import RELAXED_LIMITS
from tests.faults.loopback import ServerThread
from tests.in_process import InProcessApp
from tests.support import Provisioner, Receiver, ServerProcess, Tenant

WAIT = 15.0


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def traced(module_db: str, exporter: InMemorySpanExporter) -> Iterator[InProcessApp]:
    """The app and its dispatcher in this process, traces on through the in-memory exporter."""
    upgrade(module_db)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    settings = Settings(database_url=module_db, allow_private_targets=True, retry_schedule=(0.2, 0.2),
                        poll_interval=0.1, delivery_timeout=5.0, lease_seconds=20.0, **RELAXED_LIMITS)
    app = InProcessApp(settings, dispatcher=True).start()
    try:
        yield app
    finally:
        app.stop()
        tracing.disable()


def subscribe(base: httpx.Client, customer: Tenant, url: str) -> None:
    r = base.post(f"/v3/domains/{customer.domain}/webhooks", auth=("api", customer.api_key),
                  data={"id": "delivered", "url": url})
    assert r.status_code == 200, r.text


def event(customer: Tenant) -> dict[str, Any]:
    return {"domain": customer.domain, "event": "delivered", "recipient": "bob@example.org"}


def hex_ids(traceparent: str) -> tuple[int, int]:
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert version == "00"
    return int(trace_id, 16), int(span_id, 16)


def linked_to(span: ReadableSpan, span_id: int) -> bool:
    return any(link.context.span_id == span_id for link in span.links)


def wait_spans(exporter: InMemorySpanExporter, found: Callable[[list[ReadableSpan]], bool]) -> list[ReadableSpan]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        spans = list(exporter.get_finished_spans())
        if found(spans):
            return spans
        time.sleep(0.05)
    raise AssertionError(f"spans not there: {[s.name for s in exporter.get_finished_spans()]}")


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_an_event_is_one_trace_from_request_to_receiver(traced: InProcessApp, exporter: InMemorySpanExporter,
                                                        module_db: str, receiver: Receiver) -> None:
    """The mail platform's own trace goes on: its request's ``traceparent`` is the parent of our request
    span; each attempt (the first answered 500, the retry 200) is a child of that request, and each
    receiver got its attempt's context; the transaction, claims and writes are tied to it by parent or
    links."""
    customer = Provisioner(module_db).tenant()
    path = f"/{secrets.token_hex(6)}"
    receiver.script(path, [500, 200])
    client_trace, client_span = secrets.randbits(128), secrets.randbits(64)
    with traced.client() as api:
        subscribe(api, customer, receiver.url(path))
        r = api.post("/v1/events", json=event(customer), headers={
            "Authorization": f"Bearer {customer.api_key}",
            "traceparent": f"00-{client_trace:032x}-{client_span:016x}-01"})
        assert r.status_code == 202, r.text
    first, second = receiver.wait_for(path, 2)

    def complete(spans: list[ReadableSpan]) -> bool:
        attempts = [s for s in named(spans, "mailhooks.attempt") if s.context.trace_id == client_trace]
        return len(attempts) == 2 and all(
            any(linked_to(w, a.context.span_id) for w in named(spans, "mailhooks.record")) for a in attempts)

    spans = wait_spans(exporter, complete)
    (request,) = [s for s in named(spans, "POST /v1/events") if s.context.trace_id == client_trace]
    assert request.kind == SpanKind.SERVER
    assert request.parent is not None and request.parent.span_id == client_span
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 202

    (transaction,) = [s for s in named(spans, "mailhooks.ingest.transaction") if linked_to(s, request.context.span_id)]
    assert transaction.parent is not None and transaction.parent.span_id == request.context.span_id

    attempts = sorted((s for s in named(spans, "mailhooks.attempt") if s.context.trace_id == client_trace),
                      key=lambda s: s.start_time or 0)
    assert [a.attributes["mailhooks.attempt.number"] for a in attempts if a.attributes] == [1, 2]
    assert [a.attributes["http.response.status_code"] for a in attempts if a.attributes] == [500, 200]
    for attempt, got in zip(attempts, (first, second), strict=True):
        assert attempt.kind == SpanKind.CLIENT
        assert attempt.parent is not None and attempt.parent.span_id == request.context.span_id
        assert hex_ids(got.headers["traceparent"]) == (client_trace, attempt.context.span_id)
        # each attempt was claimed by a claim span linked to the request, and written by a linked write
        (claim,) = [s for s in named(spans, "mailhooks.claim") if linked_to(attempt, s.context.span_id)]
        assert linked_to(claim, request.context.span_id)
        assert any(linked_to(w, attempt.context.span_id) for w in named(spans, "mailhooks.record"))


def test_a_request_without_context_starts_the_trace_of_all_its_events(
        traced: InProcessApp, exporter: InMemorySpanExporter, module_db: str, receiver: Receiver) -> None:
    customer = Provisioner(module_db).tenant()
    path = f"/{secrets.token_hex(6)}"
    with traced.client() as api:
        subscribe(api, customer, receiver.url(path))
        r = api.post("/v1/events", json=[event(customer), event(customer)],
                     headers={"Authorization": f"Bearer {customer.api_key}"})
        assert r.status_code == 202, r.text
    got = receiver.wait_for(path, 2)
    trace_ids = {hex_ids(g.headers["traceparent"])[0] for g in got}
    assert len(trace_ids) == 1
    (trace_id,) = trace_ids

    spans = wait_spans(exporter, lambda spans: len(
        [s for s in named(spans, "mailhooks.attempt") if s.context.trace_id == trace_id]) == 2)
    (request,) = [s for s in named(spans, "POST /v1/events") if s.context.trace_id == trace_id]
    assert request.parent is None  # a root: the trace begins with our request
    for attempt in named(spans, "mailhooks.attempt"):
        if attempt.context.trace_id == trace_id:
            assert attempt.parent is not None and attempt.parent.span_id == request.context.span_id
            assert attempt.attributes is not None and attempt.attributes["server.address"] == "127.0.0.1"
            assert "url.full" not in attempt.attributes  # a URL's path may hold the receiver's secret


# ---------------------------------------------------------------------- real processes


class Collector(ServerThread):
    """An OTLP/HTTP trace receiver on 127.0.0.1: keeps every span of every ``POST /v1/traces``."""

    def __init__(self) -> None:
        super().__init__(name="otlp-collector")
        self.spans: list[tuple[str, Any]] = []  # (service.name, protobuf Span)
        self._lock = threading.Lock()

    async def _open(self) -> Callable[[], Awaitable[None]]:
        from aiohttp import web

        async def traces(request: web.Request) -> web.Response:
            body = await request.read()
            if request.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            export = ExportTraceServiceRequest.FromString(body)
            with self._lock:
                for resource_spans in export.resource_spans:
                    service = next((a.value.string_value for a in resource_spans.resource.attributes
                                    if a.key == "service.name"), "")
                    for scope_spans in resource_spans.scope_spans:
                        self.spans.extend((service, span) for span in scope_spans.spans)
            return web.Response(body=b"", content_type="application/x-protobuf")

        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner.cleanup

    def of_trace(self, trace_id: int) -> list[tuple[str, Any]]:
        with self._lock:
            return [(service, s) for service, s in self.spans if int.from_bytes(s.trace_id, "big") == trace_id]


def serve(database: str, logs: Path, **env: str) -> ServerProcess:
    """``mailhooks serve`` with exactly the ``OTEL_*`` variables given (none of the test run's own), on a
    database of its own: the traced dispatcher of this process must not take its deliveries."""
    proc = ServerProcess(database, log_dir=logs, env={"MAILHOOKS_ALLOW_PRIVATE_TARGETS": "1",
                                                      "MAILHOOKS_POLL_INTERVAL": "0.1", **env})
    proc.env = {key: value for key, value in proc.env.items() if not key.startswith("OTEL_") or key in env}
    proc.start()
    return proc


def emit_to(proc: ServerProcess, customer: Tenant, url: str) -> None:
    with httpx.Client(base_url=proc.base_url) as api:
        subscribe(api, customer, url)
        r = api.post("/v1/events", json=event(customer), headers={"Authorization": f"Bearer {customer.api_key}"})
        assert r.status_code == 202, r.text


def test_serve_exports_spans_over_otlp_http(empty_db: str, receiver: Receiver, tmp_path: Path) -> None:
    upgrade(empty_db)
    collector = Collector().start()
    proc = serve(empty_db, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.port}",
                 OTEL_BSP_SCHEDULE_DELAY="100")
    try:
        customer = Provisioner(empty_db).tenant()
        path = f"/{secrets.token_hex(6)}"
        emit_to(proc, customer, receiver.url(path))
        (got,) = receiver.wait_for(path, 1)
        trace_id, attempt_span = hex_ids(got.headers["traceparent"])
        deadline = time.monotonic() + WAIT
        names: set[str] = set()
        while time.monotonic() < deadline and not {"POST /v1/events", "mailhooks.attempt"} <= names:
            names = {span.name for _, span in collector.of_trace(trace_id)}
            time.sleep(0.1)
        exported = collector.of_trace(trace_id)
        assert {"POST /v1/events", "mailhooks.ingest.transaction", "mailhooks.attempt"} <= names, proc.logs()
        assert {service for service, _ in exported} == {"mailhooks"}
        (attempt,) = [span for _, span in exported if span.name == "mailhooks.attempt"]
        assert int.from_bytes(attempt.span_id, "big") == attempt_span
    finally:
        proc.stop()
        collector.stop()


def test_without_the_variable_no_traceparent_is_sent(empty_db: str, receiver: Receiver, tmp_path: Path) -> None:
    upgrade(empty_db)
    proc = serve(empty_db, tmp_path)
    try:
        customer = Provisioner(empty_db).tenant()
        path = f"/{secrets.token_hex(6)}"
        emit_to(proc, customer, receiver.url(path))
        (got,) = receiver.wait_for(path, 1)
        assert "traceparent" not in {name.lower() for name in got.headers}
        assert "webhook-signature" in got.headers
    finally:
        proc.stop()


# Recent FastAPI releases depend on the OpenTelemetry API and import it themselves (their own telemetry,
# off unless a tracer provider is configured): what the web processes load of it beyond that is ours.
WHAT_A_PROCESS_LOADS = """
import sys
def loaded():
    return {name for name in sys.modules if name.split(".")[0] == "opentelemetry" or name == "mailhooks.tracing.spans"}
framework = set()
if sys.argv[1] == "serve":
    import fastapi.applications, fastapi.routing
    framework = loaded()
from mailhooks import cli, tracing
from mailhooks.config import Settings
from mailhooks.services import ProcessServices, web_app
from mailhooks.worker.dispatcher import Dispatcher
settings = Settings(database_url="sqlite:///unused.db")
svc = ProcessServices.build(settings, cached_reads=False)
Dispatcher(svc.store, settings, svc.policy)
if sys.argv[1] == "serve":
    web_app(settings, dispatcher=True)
else:
    tracing.enable_from_env()  # what ``mailhooks worker`` does first
ours = loaded() - framework
print(tracing.TRACER is not None, "opentelemetry.sdk.trace" in ours, "mailhooks.tracing.spans" in ours, len(ours))
"""


@pytest.mark.parametrize("process", ["serve", "worker"])
@pytest.mark.parametrize(("env", "answer"), [
    ({}, "False False False 0\n"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, "True True True "),
])
def test_opentelemetry_is_loaded_only_with_the_variable(process: str, env: dict[str, str], answer: str,
                                                        tmp_path: Path) -> None:
    base = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", WHAT_A_PROCESS_LOADS, process], env={**base, **env}, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.startswith(answer), out
