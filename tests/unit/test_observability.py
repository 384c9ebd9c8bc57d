"""JSON log lines, EMF metric lines and the AWS call counter (tracing: test_tracing.py)."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from runtime.observability import aws_calls, logs, metrics
from runtime.settings import Settings

RFC3339_UTC_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "table_name": "jobs",
        "access_table_name": "access",
        "queue_url": "http://127.0.0.1:1/queue/jobs",
        "dead_letter_queue_url": "http://127.0.0.1:1/queue/jobs-dlq",
        "documents_bucket": "documents",
        "service_name": "test-service",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.configure(make_settings(log_level="INFO"), stream=stream)
    yield stream
    logs.configure(make_settings(log_level="INFO"))


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_log_event_writes_one_json_line_with_the_bound_ids(log_stream: io.StringIO) -> None:
    with logs.bind(trace_id="t-1", job_id="j-1"):
        logs.log_event("job_succeeded", durationMs=12.5, jobType="process_document")
    (line,) = lines(log_stream)
    assert RFC3339_UTC_MS.match(str(line["ts"]))
    assert line == {
        "ts": line["ts"],
        "level": "info",
        "service": "test-service",
        "event": "job_succeeded",
        "traceId": "t-1",
        "jobId": "j-1",
        "durationMs": 12.5,
        "jobType": "process_document",
    }
    assert "\n" not in log_stream.getvalue().rstrip("\n")


def test_bind_nests_and_unbinds(log_stream: io.StringIO) -> None:
    with logs.bind(trace_id="t-outer"):
        with logs.bind(job_id="j-inner"):
            logs.log_event("inner")
        logs.log_event("outer")
    logs.log_event("none")
    inner, outer, none = lines(log_stream)
    assert (inner["traceId"], inner["jobId"]) == ("t-outer", "j-inner")
    assert outer["traceId"] == "t-outer" and "jobId" not in outer
    assert "traceId" not in none and "jobId" not in none


def test_log_level_from_settings_drops_lower_levels() -> None:
    stream = io.StringIO()
    logs.configure(make_settings(log_level="WARNING"), stream=stream)
    try:
        logs.log_event("chatty", level="info")
        logs.log_event("debugging", level="debug")
        logs.log_event("trouble", level="warning")
        logs.log_event("broken", level="error")
    finally:
        logs.configure(make_settings(log_level="INFO"))
    assert [line["event"] for line in lines(stream)] == ["trouble", "broken"]


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="'loud'"):
        logs.log_event("x", level="loud")
    with pytest.raises(ValueError, match="'LOUD'"):
        logs.configure(make_settings(log_level="LOUD"))


def test_bindings_stay_in_their_thread_and_follow_propagate(log_stream: io.StringIO) -> None:
    barrier = threading.Barrier(4)

    def work(n: int) -> None:
        with logs.bind(trace_id=f"t-{n}", job_id=f"j-{n}"):
            barrier.wait()  # all four threads are bound at the same time
            logs.log_event("work", n=n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen = {(line["n"], line["traceId"], line["jobId"]) for line in lines(log_stream)}
    assert seen == {(n, f"t-{n}", f"j-{n}") for n in range(4)}

    log_stream.truncate(0)
    log_stream.seek(0)
    with ThreadPoolExecutor(max_workers=2) as pool:
        with logs.bind(trace_id="t-submitter", job_id="j-submitter"):
            propagated = pool.submit(logs.propagate(logs.log_event), "propagated")
        plain = pool.submit(logs.log_event, "plain")
        propagated.result()
        plain.result()
    by_event = {line["event"]: line for line in lines(log_stream)}
    assert by_event["propagated"]["traceId"] == "t-submitter"
    assert by_event["propagated"]["jobId"] == "j-submitter"
    assert "traceId" not in by_event["plain"]


def test_stdlib_warnings_become_json_lines_and_info_is_dropped(log_stream: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").info("started server process")
    logging.getLogger("botocore.retryhandler").warning("retry %d of %s", 2, "SendMessage")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("exception in asgi application")
    warning, error = lines(log_stream)
    assert warning["level"] == "warning"
    assert warning["logger"] == "botocore.retryhandler"
    assert warning["message"] == "retry 2 of SendMessage"
    assert warning["service"] == "test-service"
    assert error["level"] == "error"
    assert error["errorType"] == "RuntimeError"
    assert "boom" in str(error["stack"])


@pytest.fixture
def metric_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    metrics.configure("TestNamespace", "test-service", stream=stream)
    yield stream
    metrics.configure("JobTickets", "job-tickets")


def test_emit_writes_one_emf_line(metric_stream: io.StringIO) -> None:
    metrics.emit(
        {"JobsSucceeded": (1, "Count"), "JobDuration": (12.5, "Milliseconds")},
        dimensions={"JobType": "process_document"},
    )
    (raw,) = metric_stream.getvalue().splitlines()
    assert ", " not in raw and ": " not in raw  # compact separators: bytes are billed
    record = json.loads(raw)
    aws = record["_aws"]
    assert isinstance(aws["Timestamp"], int) and aws["Timestamp"] > 1_700_000_000_000  # epoch milliseconds
    assert aws["CloudWatchMetrics"] == [
        {
            "Namespace": "TestNamespace",
            "Dimensions": [["Service", "JobType"]],
            "Metrics": [{"Name": "JobsSucceeded", "Unit": "Count"}, {"Name": "JobDuration", "Unit": "Milliseconds"}],
        }
    ]
    assert record["Service"] == "test-service"
    assert record["JobType"] == "process_document"
    assert record["JobsSucceeded"] == 1.0
    assert record["JobDuration"] == 12.5


def test_emit_refuses_unknown_units_and_empty_sets(metric_stream: io.StringIO) -> None:
    with pytest.raises(ValueError, match="'ms'"):
        metrics.emit({"JobDuration": (1.0, "ms")})
    with pytest.raises(ValueError, match="no metrics"):
        metrics.emit({})
    assert metric_stream.getvalue() == ""


def test_concurrent_emits_never_interleave(metric_stream: io.StringIO) -> None:
    def emit_many(n: int) -> None:
        for _ in range(200):
            metrics.emit({"JobsCreated": (1, "Count")}, dimensions={"Worker": str(n)})

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(emit_many, range(8)))
    records = [json.loads(line) for line in metric_stream.getvalue().splitlines()]
    assert len(records) == 1600
    assert {record["Worker"] for record in records} == {str(n) for n in range(8)}


@pytest.fixture
def counted_sqs() -> Iterator[tuple[object, Stubber]]:
    aws_calls.reset()
    client = boto3.client("sqs", region_name="us-east-1", endpoint_url="http://127.0.0.1:1")
    aws_calls.install(client)
    aws_calls.install(client)  # a second install must not double count
    with Stubber(client) as stubber:
        yield client, stubber
    aws_calls.reset()


def test_calls_are_counted_by_category_service_and_operation(counted_sqs: tuple[object, Stubber]) -> None:
    client, stubber = counted_sqs
    url = "http://127.0.0.1:1/000000000000/jobs"
    stubber.add_response("send_message", {"MessageId": "m-1", "MD5OfMessageBody": "x"})
    stubber.add_response("send_message", {"MessageId": "m-2", "MD5OfMessageBody": "x"})
    stubber.add_response("get_queue_attributes", {"Attributes": {}})
    stubber.add_response("receive_message", {"Messages": []})
    with aws_calls.category("submit"):
        client.send_message(QueueUrl=url, MessageBody="a")  # type: ignore[attr-defined]
        client.send_message(QueueUrl=url, MessageBody="b")  # type: ignore[attr-defined]
    with aws_calls.category("health"):
        client.get_queue_attributes(QueueUrl=url)  # type: ignore[attr-defined]
    client.receive_message(QueueUrl=url)  # type: ignore[attr-defined]
    assert aws_calls.snapshot() == {
        "submit": {"sqs.SendMessage": 2},
        "health": {"sqs.GetQueueAttributes": 1},
        "other": {"sqs.ReceiveMessage": 1},
    }


def test_category_follows_the_thread_that_set_it(counted_sqs: tuple[object, Stubber]) -> None:
    barrier = threading.Barrier(2)
    seen: dict[str, str] = {}

    def run(name: str) -> None:
        with aws_calls.category(name):
            barrier.wait()
            aws_calls.record("dynamodb", "GetItem")
            seen[name] = aws_calls.current_category()

    threads = [threading.Thread(target=run, args=(name,)) for name in ("worker", "background")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"worker": "worker", "background": "background"}
    assert aws_calls.snapshot() == {"background": {"dynamodb.GetItem": 1}, "worker": {"dynamodb.GetItem": 1}}
    with pytest.raises(ValueError, match="'nobody'"), aws_calls.category("nobody"):
        pass


def test_snapshot_file_is_written_atomically(tmp_path: Path) -> None:
    aws_calls.reset()
    with aws_calls.category("poll"):
        aws_calls.record("dynamodb", "GetItem")
    target = tmp_path / "calls.json"
    aws_calls.write_snapshot(target)
    assert json.loads(target.read_text()) == {"poll": {"dynamodb.GetItem": 1}}
    assert [path.name for path in tmp_path.iterdir()] == ["calls.json"]  # no temporary file left behind
    aws_calls.reset()
