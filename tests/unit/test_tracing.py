"""Tracing on OpenTelemetry: off by default, X-Ray ids and header format, the header's round trip through an
SQS message's AWSTraceHeader, AWS calls sampled only inside a unit of work, and OTLP/HTTP export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from opentelemetry import propagate, trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from runtime.adapters.sqs_batch_sender import BatchingSqsJobQueue
from runtime.adapters.sqs_queue import SqsJobQueue
from runtime.domain.ports import JobMessage
from runtime.observability import tracing
from runtime.settings import Settings, SettingsError, load_settings

INCOMING_TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
REPO = Path(__file__).resolve().parents[2]
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "table_name": "jobs",
        "access_table_name": "access",
        "queue_url": QUEUE_URL,
        "dead_letter_queue_url": QUEUE_URL + "-dlq",
        "documents_bucket": "documents",
        "service_name": "test-service",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, every span kept in memory; off again (botocore unpatched) after the test."""
    exporter = InMemorySpanExporter()
    tracing.configure(make_settings(tracing_enabled=True), exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown()


def finished(exporter: InMemorySpanExporter) -> dict[str, Any]:
    tracing.flush()
    return {span.name: span for span in exporter.get_finished_spans()}


def xray_id(trace_id: int) -> str:
    hex_id = f"{trace_id:032x}"
    return f"1-{hex_id[:8]}-{hex_id[8:]}"


def test_tracing_is_off_unless_enabled() -> None:
    assert Settings.model_fields["tracing_enabled"].default is False
    tracing.configure(make_settings(tracing_enabled=False))
    assert not tracing.enabled()
    with tracing.continue_trace("worker", INCOMING_TRACE_HEADER) as consumer, tracing.span("claim") as inner:
        assert consumer is None and inner is None
        assert tracing.current_trace_header() is None and tracing.current_trace_id() is None


def test_the_otlp_endpoint_is_opentelemetrys_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")
    assert make_settings().otlp_endpoint == "http://127.0.0.1:4318"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")
    with pytest.raises(SettingsError, match=r"OTEL_EXPORTER_OTLP_ENDPOINT: .*not an http url: 'collector:4318'"):
        load_settings(
            table_name="t", access_table_name="a", queue_url="q", dead_letter_queue_url="d", documents_bucket="b"
        )


def test_a_consumer_span_continues_the_incoming_x_ray_header(spans: InMemorySpanExporter) -> None:
    with tracing.continue_trace("worker.job", INCOMING_TRACE_HEADER), tracing.span("claim"):
        tracing.annotate(jobId="j-1")
        inner_header = tracing.current_trace_header()
        assert tracing.current_trace_id() == "1-5759e988-bd862e3fe1be46a994272793"
    by_name = finished(spans)
    consumer, claim = by_name["worker.job"], by_name["claim"]
    assert consumer.kind is SpanKind.CONSUMER
    assert xray_id(consumer.context.trace_id) == "1-5759e988-bd862e3fe1be46a994272793"
    assert consumer.parent.span_id == 0x53995C3F42CD8AD8 and consumer.parent.is_remote
    assert claim.parent.span_id == consumer.context.span_id
    assert claim.attributes["jobId"] == "j-1"
    assert inner_header == f"Root=1-5759e988-bd862e3fe1be46a994272793;Parent={claim.context.span_id:016x};Sampled=1"


def test_new_traces_get_x_ray_ids_and_a_message_without_header_joins_its_jobs_trace_id(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.span("api"):
        fresh = tracing.current_trace_id()
    assert fresh is not None and tracing.XRAY_TRACE_ID.fullmatch(fresh)
    with tracing.continue_trace("republished", None, trace_id=fresh):
        pass
    with tracing.continue_trace("foreign", "Root=garbage", trace_id="caller-chosen-id"):
        pass
    by_name = finished(spans)
    assert by_name["republished"].context.trace_id == by_name["api"].context.trace_id
    assert by_name["republished"].parent is None
    assert by_name["foreign"].parent is None and by_name["foreign"].context.trace_id != by_name["api"].context.trace_id


def test_the_x_ray_header_round_trips_through_the_sqs_message_attribute(spans: InMemorySpanExporter) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    queue = SqsJobQueue(sqs, QUEUE_URL, trace_header=tracing.current_trace_header)
    with Stubber(sqs) as stub, tracing.span("api.submit") as producer:
        assert producer is not None
        header = tracing.current_trace_header()
        assert header is not None
        stub.add_response(
            "send_message",
            {"MessageId": "m-1"},
            expected_params={
                "QueueUrl": QUEUE_URL,
                "MessageBody": '{"jobId":"j-1","traceId":"t-1"}',
                "MessageSystemAttributes": {"AWSTraceHeader": {"DataType": "String", "StringValue": header}},
            },
        )
        queue.send(JobMessage(job_id="j-1", trace_id="t-1"))
        stub.assert_no_pending_responses()
    with Stubber(sqs) as stub:
        stub.add_response(
            "receive_message",
            {
                "Messages": [
                    {
                        "MessageId": "m-1",
                        "ReceiptHandle": "rh-1",
                        "Body": '{"jobId":"j-1","traceId":"t-1"}',
                        "Attributes": {"AWSTraceHeader": header, "ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                    }
                ]
            },
        )
        (received,) = queue.receive(max_messages=10, wait_s=0, visibility_timeout_s=30)
    assert received.trace_header == header
    with tracing.continue_trace("worker.job", received.trace_header):
        pass
    by_name = finished(spans)
    consumer, api = by_name["worker.job"], by_name["api.submit"]
    assert consumer.context.trace_id == api.context.trace_id
    assert consumer.parent.span_id == api.context.span_id


def test_aws_calls_are_spans_inside_a_unit_of_work_only(spans: InMemorySpanExporter) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(sqs) as stub:
        stub.add_response("get_queue_attributes", {"Attributes": {}})
        stub.add_response("get_queue_attributes", {"Attributes": {}})
        sqs.get_queue_attributes(QueueUrl=QUEUE_URL)  # an idle poll: no trace of its own
        with tracing.span("job"):
            sqs.get_queue_attributes(QueueUrl=QUEUE_URL)
    tracing.flush()
    call, job = spans.get_finished_spans()
    assert (call.name, job.name) == ("SQS.GetQueueAttributes", "job")
    assert call.kind is SpanKind.CLIENT and call.parent.span_id == job.context.span_id


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_spans_are_exported_over_otlp_http_to_the_configured_endpoint() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Collector.received.clear()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        tracing.configure(make_settings(tracing_enabled=True, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint))
        with tracing.continue_trace("worker.job", INCOMING_TRACE_HEADER):
            tracing.annotate(jobId="j-1", jobType="test")
        tracing.shutdown()  # exports what is waiting
    finally:
        server.shutdown()
        server.server_close()
    ((path, body),) = _Collector.received
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    (resource_spans,) = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "test-service"
    (span,) = [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert span.name == "worker.job"
    assert span.trace_id.hex() == "5759e988bd862e3fe1be46a994272793"
    assert span.parent_span_id.hex() == "53995c3f42cd8ad8"
    assert {a.key: a.value.string_value for a in span.attributes} == {"jobId": "j-1", "jobType": "test"}


def test_each_batch_entry_carries_its_senders_header_and_the_batch_span_links_to_them(
    spans: InMemorySpanExporter,
) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sent: list[dict[str, Any]] = []
    sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", lambda params, **_: sent.append(params))
    # Both senders wait well within the linger: one SendMessageBatch serves them.
    queue = BatchingSqsJobQueue(SqsJobQueue(sqs, QUEUE_URL, trace_header=tracing.current_trace_header), linger_s=1.0)
    headers: dict[str, str | None] = {}
    together = threading.Barrier(2)

    def submit(job_id: str) -> None:
        with tracing.span(f"api.{job_id}"):
            headers[job_id] = tracing.current_trace_header()
            together.wait()
            queue.send(JobMessage(job_id=job_id, trace_id="t"))

    with Stubber(sqs) as stub:
        stub.add_response("send_message_batch", {"Successful": [], "Failed": []})
        threads = [threading.Thread(target=submit, args=(job_id,)) for job_id in ("j-1", "j-2")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    queue.close()
    ((params),) = sent
    carried = {
        json.loads(entry["MessageBody"])["jobId"]: entry["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"]
        for entry in params["Entries"]
    }
    assert carried == headers and len(set(carried.values())) == 2
    by_name = finished(spans)
    batch = by_name["sqs.send_batch"]
    assert batch.parent is None
    assert {link.context.span_id for link in batch.links} == {
        by_name["api.j-1"].context.span_id,
        by_name["api.j-2"].context.span_id,
    }


def test_in_lambda_a_message_continues_its_own_trace_and_a_request_the_invocations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invocation = "Root=1-6b0f0000-aaaaaaaaaaaaaaaaaaaaaaaa;Parent=1111111111111111;Sampled=1"
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "dlq-handler")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", invocation)
    exporter = InMemorySpanExporter()
    tracing.configure(make_settings(tracing_enabled=True), exporter=exporter)
    try:
        with tracing.continue_trace("dlq.job", INCOMING_TRACE_HEADER):
            assert tracing.current_trace_id() == "1-5759e988-bd862e3fe1be46a994272793"
        request_context = propagate.extract({})  # what the FastAPI instrumentation does for a request
        parent = trace.get_current_span(request_context).get_span_context()
        assert (
            xray_id(parent.trace_id) == "1-6b0f0000-aaaaaaaaaaaaaaaaaaaaaaaa" and parent.span_id == 0x1111111111111111
        )
    finally:
        tracing.shutdown()


def test_a_process_without_tracing_never_loads_the_sdk() -> None:
    # The SDK and its instrumentations take about 0.1 s to import: no Lambda cold start pays that for nothing.
    child = (
        "import sys\n"
        "from runtime import observability\n"
        "from runtime.settings import Settings\n"
        "observability.configure(Settings(table_name='t', access_table_name='a', queue_url='q',"
        " dead_letter_queue_url='d', documents_bucket='b'))\n"
        "heavy = ('opentelemetry.sdk', 'opentelemetry.instrumentation')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", child],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "JOBS_TRACING_ENABLED": "false"},
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
