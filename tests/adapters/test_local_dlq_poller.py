"""The DLQ poller against moto's server: the Lambda-shaped event and the partial batch semantics."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from runtime.local.dlq_poller import DeadLetterPoller, LambdaContext, failed_message_ids
from tests.adapters.resources import queue_depth

TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"


@pytest.fixture
def dead_letter_queue(moto_server: str) -> Iterator[tuple[Any, str]]:
    sqs = boto3.client("sqs", endpoint_url=moto_server)
    # A short visibility timeout so that a failed record comes back quickly.
    url = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    yield sqs, url
    sqs.delete_queue(QueueUrl=url)


class RecordingHandler:
    def __init__(self, fail: bool = False, response: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.fail = fail
        self.response = response

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        if self.response is not None:
            return self.response
        ids = [record["messageId"] for record in event["Records"]]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in ids] if self.fail else []}


def test_event_is_shaped_as_lambda_builds_it_and_handled_records_are_deleted(
    dead_letter_queue: tuple[Any, str],
) -> None:
    sqs, url = dead_letter_queue
    body = json.dumps({"jobId": "j-1", "traceId": "t-1"})
    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody=body,
        MessageAttributes={"origin": {"DataType": "String", "StringValue": "test"}},
        MessageSystemAttributes={
            "AWSTraceHeader": {
                "DataType": "String",
                "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            }
        },
    )
    handler = RecordingHandler()
    poller = DeadLetterPoller(sqs, url, handler, region="us-east-1", wait_time_s=1)

    assert poller.poll_once() == 1

    (event,) = handler.events
    (record,) = event["Records"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert record["messageId"] == sent["MessageId"]
    assert record["receiptHandle"]
    assert record["body"] == body
    assert record["md5OfBody"] == sent["MD5OfMessageBody"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == arn
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["attributes"]["AWSTraceHeader"] == TRACE_HEADER
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert record["messageAttributes"] == {
        "origin": {"stringValue": "test", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    }
    context = handler.contexts[0]
    assert isinstance(context, LambdaContext)
    assert 0 < context.get_remaining_time_in_millis() <= 30_000
    assert context.aws_request_id and context.function_name
    assert queue_depth(sqs, url) == 0


def test_reported_failures_stay_and_come_back(dead_letter_queue: tuple[Any, str]) -> None:
    sqs, url = dead_letter_queue
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"jobId": "j-2", "traceId": "t-2"}))
    failing = RecordingHandler(fail=True)
    assert DeadLetterPoller(sqs, url, failing, region="us-east-1", wait_time_s=1).poll_once() == 0
    assert queue_depth(sqs, url) == 1

    # After the visibility timeout the same message is delivered again, with a higher receive count.
    succeeding = RecordingHandler()
    poller = DeadLetterPoller(sqs, url, succeeding, region="us-east-1", wait_time_s=5)
    deleted = 0
    for _ in range(5):
        deleted = poller.poll_once()
        if deleted:
            break
    assert deleted == 1
    assert succeeding.events[0]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert queue_depth(sqs, url) == 0


def test_a_crashing_handler_fails_the_whole_batch(dead_letter_queue: tuple[Any, str]) -> None:
    sqs, url = dead_letter_queue
    sqs.send_message(QueueUrl=url, MessageBody="{}")

    def crash(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("handler crashed")

    assert DeadLetterPoller(sqs, url, crash, region="us-east-1", wait_time_s=1).poll_once() == 0
    assert queue_depth(sqs, url) == 1


def test_partial_batch_response_is_read_as_lambda_reads_it() -> None:
    records = [{"messageId": "a"}, {"messageId": "b"}]
    assert failed_message_ids(None, records) == set()
    assert failed_message_ids({}, records) == set()
    assert failed_message_ids({"batchItemFailures": []}, records) == set()
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, records) == {"b"}
    # Malformed answers fail everything, as Lambda does.
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, records) == {"a", "b"}
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, records) == {"a", "b"}
    assert failed_message_ids({"batchItemFailures": "b"}, records) == {"a", "b"}
    assert failed_message_ids("ok", records) == {"a", "b"}
