"""The OpenTelemetry SDK's TracerProvider as tracing.configure() wants it: X-Ray trace ids (one of which a
consumer may pin), a sampler that skips AWS calls made outside any unit of work, and the exporter. Imported only
when tracing is on, so that a process without tracing never loads the SDK (about 0.1 s at every cold start)."""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

# An X-Ray trace id (as an int) that the next root span started in this context must use: a job's traceId
# when its message came without a trace header (a republished message), so the job's spans still join.
pinned_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("pinned_trace_id", default=None)


class PinnableIdGenerator(AwsXRayIdGenerator):
    def generate_trace_id(self) -> int:
        pinned = pinned_trace_id.get()
        return pinned if pinned is not None else super().generate_trace_id()


class NoBareAwsCalls(Sampler):
    """Roots: every unit of work (request, job) is sampled; an AWS SDK call that belongs to none is not,
    so idle polling does not fill the trace store. Children follow their parent (ParentBased around this)."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "NoBareAwsCalls"


def build_provider(service_name: str, exporter: SpanExporter | None) -> TracerProvider:
    """Spans of `service_name`, batched to `exporter` (none: made and propagated, never exported)."""
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service_name}),
        id_generator=PinnableIdGenerator(),
        sampler=ParentBased(root=NoBareAwsCalls()),
    )
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def otlp_exporter(endpoint: str, traces_path: str) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + traces_path)
