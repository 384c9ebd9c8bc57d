"""`python -m runtime.local.dlq_poller`: stands in for Lambda's SQS event source mapping on the emulator.

Long-polls the dead-letter queue (batch size 1), calls `runtime.dlq_handler.handler` with the event Lambda
would build, and deletes the records not reported in batchItemFailures; failed ones come back after the
queue's visibility timeout, as with the real mapping.
"""

from __future__ import annotations

import base64
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from runtime.observability import logs
from runtime.observability.names import LogEvent

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

FUNCTION_NAME = "job-tickets-local-dlq-handler"
BATCH_SIZE = 1
WAIT_TIME_S = 20
TIMEOUT_S = 30  # the handler's configured timeout, as the stack gives the Lambda
ERROR_PAUSE_S = 1.0

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str = FUNCTION_NAME
    function_version: str = "$LATEST"
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = f"/aws/lambda/{FUNCTION_NAME}"
    log_stream_name: str = "local"
    timeout_s: float = TIMEOUT_S
    started_at: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started_at + self.timeout_s - time.monotonic()) * 1000))


def to_lambda_record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One SQS message as Lambda's event source mapping puts it into Records[]."""
    attributes = message.get("Attributes", {})
    record_attributes = {
        name: attributes[name]
        for name in ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp")
        if name in attributes
    }
    if "AWSTraceHeader" in attributes:
        record_attributes["AWSTraceHeader"] = attributes["AWSTraceHeader"]
    for name in ("SequenceNumber", "MessageGroupId", "MessageDeduplicationId"):
        if name in attributes:  # FIFO queues only
            record_attributes[name] = attributes[name]
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": record_attributes,
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    return converted


def failed_message_ids(response: Any, records: list[dict[str, Any]]) -> set[str]:
    """The records to keep, read as Lambda reads a partial batch response: a malformed response, or an
    itemIdentifier that is empty or not in the batch, fails the whole batch."""
    every_id = {record["messageId"] for record in records}
    if response is None:
        return set()
    if not isinstance(response, dict):
        return every_id
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return every_id
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in every_id:
            return every_id
        failed.add(identifier)
    return failed


class DeadLetterPoller:
    """One receive -> invoke -> delete round at a time, as the event source mapping does it."""

    def __init__(
        self, sqs: SQSClient, queue_url: str, handler: Handler, *, region: str, wait_time_s: int = WAIT_TIME_S
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._region = region
        self._wait_time_s = wait_time_s
        self._queue_arn: str | None = None
        self.busy = threading.Event()

    def queue_arn(self) -> str:
        if self._queue_arn is None:
            attributes = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])
            self._queue_arn = str(attributes["Attributes"]["QueueArn"])
        return self._queue_arn

    def poll_once(self) -> int:
        """Receives up to one batch and hands it to the handler; returns how many records were deleted."""
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=BATCH_SIZE,
            WaitTimeSeconds=self._wait_time_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        self.busy.set()
        try:
            records = [to_lambda_record(m, queue_arn=self.queue_arn(), region=self._region) for m in messages]
            try:
                response = self._handler({"Records": records}, LambdaContext())
            except Exception as exc:  # noqa: BLE001 - a crashing invocation fails the batch, as in Lambda
                logs.log_event(LogEvent.DLQ_INVOKE_FAILED, level="error", error=f"{type(exc).__name__}: {exc}")
                return 0
            failed = failed_message_ids(response, records)
            done = [record for record in records if record["messageId"] not in failed]
            if done:
                self._sqs.delete_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)],
                )
            return len(done)
        finally:
            self.busy.clear()


def main() -> int:
    from runtime import aws_clients, dlq_handler, entrypoint

    settings = entrypoint.configured_settings()
    if settings is None:
        return entrypoint.BAD_SETTINGS_EXIT
    poller = DeadLetterPoller(
        aws_clients.client("sqs", settings), settings.dead_letter_queue_url, dlq_handler.handler, region=settings.region
    )
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        # Idle in a long poll: nothing is in flight, leave at once. Inside a batch: finish it first.
        if not poller.busy.is_set():
            raise SystemExit(0)

    entrypoint.on_stop_signals(on_signal)
    logs.log_event(LogEvent.DLQ_POLLER_STARTING, queueUrl=settings.dead_letter_queue_url)
    while not stopping.is_set():
        try:
            poller.poll_once()
        except SystemExit:
            raise
        except Exception as exc:  # noqa: BLE001 - the emulator may be briefly away; keep polling
            logs.log_event(LogEvent.DLQ_POLL_FAILED, level="warning", error=f"{type(exc).__name__}: {exc}")
            stopping.wait(ERROR_PAUSE_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
