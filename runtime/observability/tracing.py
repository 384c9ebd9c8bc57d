"""Tracing on OpenTelemetry, in X-Ray's format, behind this module (with trace_provider.py, which builds the SDK's
provider, the only code importing OpenTelemetry).

Everything here is a no-op unless settings.tracing_enabled (off by default), and OpenTelemetry is imported only
once it is on. When on:
- spans get X-Ray-compatible trace ids (AwsXRayIdGenerator), and the trace context travels in X-Ray's
  header format (AwsXRayPropagator): incoming X-Amzn-Trace-Id on HTTP requests (on Lambda, the invocation's
  _X_AMZN_TRACE_ID instead), outgoing X-Amzn-Trace-Id on every AWS SDK request, and the AWSTraceHeader
  system attribute of each job message (`current_trace_header()`, read back by `continue_trace()` in the
  worker and the DLQ handler), so that API -> SQS -> worker -> DLQ share one trace;
- every FastAPI request is a server span (`instrument_app`), every botocore call inside a unit of work a
  client span; a botocore call outside any unit of work (the worker's long polls, heartbeats) is not sampled;
- spans go to settings.otlp_endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) over OTLP/HTTP, in batches. On ECS that is
  the ADOT collector sidecar, which sends them on to X-Ray. With no endpoint set (Lambda, where there is no
  collector) spans are made and propagated but exported nowhere: the trace still joins across services, and
  Lambda's active tracing records the function's own segment.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.propagators.aws.aws_xray_propagator import AwsXRayPropagator
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from runtime.settings import Settings

TRACER_NAME = "job-tickets"
# X-Ray's trace id: "1-", the start time in epoch seconds (8 hex), then 24 random hex digits.
XRAY_TRACE_ID = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")
# Appended to the OTLP base endpoint, as the OTLP exporter does with its own variable.
OTLP_TRACES_PATH = "/v1/traces"
# Load balancer and orchestrator probes: a trace each would bury the requests worth looking at.
UNTRACED_PATHS = ("/healthz", "/readyz")

_lock = threading.Lock()
# Set by configure() only: nothing below imports OpenTelemetry while tracing is off.
_provider: TracerProvider | None = None
# Messages carry exactly their own header: never Lambda's variant, which prefers the invocation's trace.
_propagator: AwsXRayPropagator | None = None
_botocore: Any = None


def enabled() -> bool:
    return _provider is not None


def _in_lambda() -> bool:
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


def configure(settings: Settings, *, exporter: SpanExporter | None = None) -> None:
    """Turns tracing on when settings.tracing_enabled. Spans go to `exporter` when given (tests pass the SDK's
    in-memory one), else over OTLP/HTTP to settings.otlp_endpoint when set, else nowhere."""
    global _provider, _propagator, _botocore
    if not settings.tracing_enabled:
        return
    with _lock:
        if _provider is not None:
            return
        from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
        from opentelemetry.propagate import set_global_textmap
        from opentelemetry.propagators.aws.aws_xray_propagator import AwsXRayLambdaPropagator, AwsXRayPropagator

        from runtime.observability.trace_provider import build_provider, otlp_exporter

        if exporter is None and settings.otlp_endpoint:
            exporter = otlp_exporter(settings.otlp_endpoint, OTLP_TRACES_PATH)
        provider = build_provider(settings.service_name, exporter)
        _propagator = AwsXRayPropagator()
        # The FastAPI instrumentation extracts an HTTP request's context with the global propagator; in Lambda
        # the request continues the invocation's trace (_X_AMZN_TRACE_ID), which Lambda's active tracing records.
        set_global_textmap(AwsXRayLambdaPropagator() if _in_lambda() else _propagator)
        _botocore = BotocoreInstrumentor()
        _botocore.instrument(tracer_provider=provider, propagator=_propagator)
        _provider = provider


def flush(timeout_ms: int = 5_000) -> None:
    """Exports the spans still waiting; Lambda handlers call it before the environment may be frozen."""
    if _provider is not None:
        _provider.force_flush(timeout_ms)


def shutdown() -> None:
    """Exports what is waiting and turns tracing off again (botocore unpatched); configure() may follow."""
    global _provider, _botocore
    with _lock:
        if _provider is None:
            return
        if _botocore is not None:
            _botocore.uninstrument()
            _botocore = None
        _provider.shutdown()
        _provider = None


def _tracer() -> Tracer:
    assert _provider is not None
    return _provider.get_tracer(TRACER_NAME)


def _span_context_of(header: str) -> Any:
    """The SpanContext an X-Ray header names, or None when the header names none."""
    from opentelemetry import trace
    from opentelemetry.propagators.aws.aws_xray_propagator import TRACE_HEADER_KEY

    assert _propagator is not None
    span_context = trace.get_current_span(_propagator.extract({TRACE_HEADER_KEY: header})).get_span_context()
    return span_context if span_context.is_valid else None


@contextlib.contextmanager
def span(name: str, *, linked_headers: Iterable[str | None] = ()) -> Iterator[Span | None]:
    """A span for a piece of work, a child of the current one (or a new trace), linked to the spans named by
    `linked_headers` (X-Ray headers: the senders a batch serves). None when tracing is off."""
    if _provider is None:
        yield None
        return
    from opentelemetry import trace

    linked = [_span_context_of(header) for header in linked_headers if header]
    links = [trace.Link(span_context) for span_context in linked if span_context is not None]
    with _tracer().start_as_current_span(name, links=links) as current:
        yield current


@contextlib.contextmanager
def continue_trace(name: str, aws_trace_header: str | None, *, trace_id: str | None = None) -> Iterator[Span | None]:
    """The consumer span for work received from SQS: a child of the span named by the message's AWSTraceHeader.
    Without a usable header, a new trace, under `trace_id` (the job's traceId) when that is an X-Ray id."""
    if _provider is None:
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.context import Context

    from runtime.observability.trace_provider import pinned_trace_id

    parent = _span_context_of(aws_trace_header) if aws_trace_header else None
    # No parent: a root, never a child of whatever span happens to be current in this thread.
    context = trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent is not None else Context()
    pinned = xray_trace_id_int(trace_id) if parent is None and trace_id else None
    token = pinned_trace_id.set(pinned)
    try:
        consumer = _tracer().start_span(name, context=context, kind=trace.SpanKind.CONSUMER)
    finally:
        pinned_trace_id.reset(token)  # the pin is for this root only, not for spans started inside it
    with trace.use_span(consumer, end_on_exit=True) as current:
        yield current


def annotate(**values: str | int | float | bool) -> None:
    """Attributes (jobId, jobType) on the current span; the ADOT collector makes them X-Ray annotations."""
    if _provider is None:
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(values)


def current_trace_header() -> str | None:
    """ "Root=...;Parent=...;Sampled=..." of the current span, for SQS's AWSTraceHeader; None when off or
    outside any span."""
    if _provider is None or _propagator is None:
        return None
    from opentelemetry.propagators.aws.aws_xray_propagator import TRACE_HEADER_KEY

    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACE_HEADER_KEY)


def current_trace_id() -> str | None:
    """The current span's trace id in X-Ray's form ("1-<8 hex>-<24 hex>"), or None when off or outside a span."""
    if _provider is None:
        return None
    from opentelemetry import trace

    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    hex_id = f"{span_context.trace_id:032x}"
    return f"1-{hex_id[:8]}-{hex_id[8:]}"


def xray_trace_id_int(value: str) -> int | None:
    """The OpenTelemetry trace id for an X-Ray trace id ("1-<8 hex>-<24 hex>"), or None for anything else."""
    if not XRAY_TRACE_ID.fullmatch(value):
        return None
    return int(value[2:10] + value[11:], 16) or None


def instrument_app(app: Any) -> None:
    """`instrument_app(app)` in create_app(), after configure(): one server span per HTTP request, continuing an
    incoming X-Amzn-Trace-Id (probes excepted: UNTRACED_PATHS). Does nothing when tracing is off."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=",".join(f"{path}$" for path in UNTRACED_PATHS),
        exclude_spans=["receive", "send"],
    )
