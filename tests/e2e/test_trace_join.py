"""One job's spans from the API, the worker and the DLQ handler share one trace id: the X-Ray header travels in
the message's AWSTraceHeader through SQS (the moto server), including the redrive to the dead-letter queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import tests.worker.plugin_jobs  # noqa: F401 - registers test_broken, the job that fails
from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.adapters.s3_objects import S3ObjectStore
from runtime.adapters.sqs_queue import SqsJobQueue
from runtime.api.app import build_container, create_app
from runtime.aws_clients import build_client
from runtime.dlq_handler import DeadLetterHandler, handle_event
from runtime.domain.job import JobStatus
from runtime.local.dlq_poller import DeadLetterPoller
from runtime.observability import tracing
from runtime.settings import Settings
from runtime.worker.runner import Worker
from tests.adapters.resources import create_resources
from tests.api.conftest import api_settings, bearer, issue_key
from tests.waiting import wait_for
from tests.worker.conftest import QUICK_WORKER_SETTINGS, VISIBILITY_S


@pytest.fixture
def traced(moto_server: str) -> Iterator[tuple[Settings, str, InMemorySpanExporter]]:
    # Redrive after one receive: the first failed attempt's message goes to the dead-letter queue on its next receive.
    resources = create_resources(moto_server, "trace", visibility_timeout_s=VISIBILITY_S, max_receive_count=1)
    settings = api_settings(
        resources,
        tracing_enabled=True,
        **QUICK_WORKER_SETTINGS,
        worker_concurrency=1,
        backoff_max_s=1.0,
        # One SendMessage per submit: moto keeps a message's AWSTraceHeader on SendMessage but drops it from
        # SendMessageBatch entries (SQS keeps both; tests/unit/test_tracing.py checks the batch entries).
        send_linger_s=0.0,
    )
    exporter = InMemorySpanExporter()
    tracing.configure(settings, exporter=exporter)
    try:
        yield settings, issue_key(resources), exporter
    finally:
        tracing.shutdown()


def test_api_worker_and_dlq_spans_of_a_job_share_one_trace(
    traced: tuple[Settings, str, InMemorySpanExporter],
) -> None:
    settings, api_key, exporter = traced
    sqs = build_client("sqs", region="us-east-1", endpoint_url=settings.endpoint_url)
    dynamodb = build_client("dynamodb", region="us-east-1", endpoint_url=settings.endpoint_url)
    store = DynamoDbJobStore(dynamodb, settings.table_name)

    # 1. The API: the request's server span, the job's traceId and X-Trace-Id are one id.
    with TestClient(create_app(container=build_container(settings))) as client:
        response = client.post(
            "/api/v1/jobs", json={"type": "test_broken", "params": {"key": "k"}}, headers=bearer(api_key)
        )
    assert response.status_code == 201, response.text
    job_id, trace_id = response.json()["jobId"], response.headers["X-Trace-Id"]
    assert response.json()["traceId"] == trace_id

    # 2. The worker: the attempt fails (retryable), the message comes back after the backoff and, past the redrive
    # limit, moves to the dead-letter queue.
    worker = Worker(
        store=store,
        queue=SqsJobQueue(sqs, settings.queue_url, trace_header=tracing.current_trace_header),
        objects=S3ObjectStore(build_client("s3", region="us-east-1", endpoint_url=settings.endpoint_url)),
        settings=settings,
        republish=False,
    )
    worker.start()
    try:
        wait_for("the failed attempt", lambda: getattr(store.get(job_id), "status", None) is JobStatus.FAILED)
        # The verdict for a job out of attempts (this DLQ counts one attempt as all): a job with attempts left would
        # be redriven, and its worker would carry on; the spans of the verdict are what this test follows.
        dead_letters = DeadLetterHandler(store, SqsJobQueue(sqs, settings.queue_url), max_attempts=1)
        poller = DeadLetterPoller(
            sqs,
            settings.dead_letter_queue_url,
            lambda event, context: handle_event(event, context, dead_letters=dead_letters),
            region="us-east-1",
            wait_time_s=1,
        )
        # 3. The DLQ handler (Lambda's event shape, as the local all-in-one delivers it).
        wait_for("the dead letter", lambda: poller.poll_once() == 1)
    finally:
        worker.stop(10.0)
    final = store.get(job_id)
    assert final is not None and final.status is JobStatus.FAILED_FINAL
    assert final.error is not None and final.error.code == "dead_lettered"

    tracing.flush()
    spans = exporter.get_finished_spans()
    server = one(spans, lambda s: s.kind is SpanKind.SERVER and s.name == "POST /api/v1/jobs")
    worker_job = one(spans, lambda s: s.name == "worker.job")
    dlq_job = one(spans, lambda s: s.name == "dlq.job")
    assert {xray_id(s) for s in (server, worker_job, dlq_job)} == {trace_id}
    # The consumers are children of the API's request (the span current when the message was built).
    assert worker_job.parent is not None and worker_job.parent.span_id == server.context.span_id
    assert dlq_job.parent is not None and dlq_job.parent.span_id == server.context.span_id
    assert worker_job.attributes is not None and worker_job.attributes["jobId"] == job_id
    assert worker_job.attributes["jobType"] == "test_broken"
    assert dlq_job.attributes is not None and dlq_job.attributes["jobId"] == job_id
    # The AWS calls made for the job are spans of its trace: the API's send, the worker's claim, the DLQ's update.
    calls = {s.name for s in spans if s.kind is SpanKind.CLIENT and xray_id(s) == trace_id}
    assert {"SQS.SendMessage", "DynamoDB.UpdateItem"} <= calls


def one(spans: Any, matches: Any) -> ReadableSpan:
    found = [span for span in spans if matches(span)]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


def xray_id(span: ReadableSpan) -> str:
    assert span.context is not None
    hex_id = f"{span.context.trace_id:032x}"
    return f"1-{hex_id[:8]}-{hex_id[8:]}"
