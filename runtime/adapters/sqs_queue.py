"""JobQueue on SQS: {"jobId","traceId"} messages, long-poll receive, batched deletes and visibility changes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from runtime.domain.ports import JobMessage, QueueUnavailable, ReceivedMessage

BATCH_SIZE = 10  # SQS's limit for batch calls
# A receipt handle that no longer names an in-flight message: the message is gone or redelivered already,
# so there is nothing left to change or delete.
_STALE_HANDLE_CODES = frozenset(
    {"ReceiptHandleIsInvalid", "AWS.SimpleQueueService.MessageNotInflight", "MessageNotInflight"}
)


def encode(message: JobMessage) -> str:
    return json.dumps({"jobId": message.job_id, "traceId": message.trace_id}, separators=(",", ":"))


def decode(body: str) -> JobMessage | None:
    """The job message in `body`, or None for anything else (a poison message)."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    job_id, trace_id = document.get("jobId"), document.get("traceId", "")
    if not isinstance(job_id, str) or not job_id or not isinstance(trace_id, str):
        return None
    return JobMessage(job_id=job_id, trace_id=trace_id)


class SqsJobQueue:
    """`client` is a boto3 SQS client. `trace_header` (e.g. tracing.current_trace_header) gives the X-Ray
    header to send as the AWSTraceHeader system attribute, or None when tracing is off."""

    def __init__(self, client: Any, queue_url: str, *, trace_header: Callable[[], str | None] | None = None) -> None:
        self._client = client
        self._url = queue_url
        self._trace_header = trace_header

    def send(self, message: JobMessage) -> None:
        self._call("send_message", QueueUrl=self._url, **self.batch_entry(message))

    def batch_entry(self, message: JobMessage) -> dict[str, Any]:
        """The message's fields for SendMessage or a SendMessageBatch entry (call it in the sender's context:
        it reads the current trace header)."""
        entry: dict[str, Any] = {"MessageBody": encode(message)}
        header = self._trace_header() if self._trace_header is not None else None
        if header:
            entry["MessageSystemAttributes"] = {"AWSTraceHeader": {"DataType": "String", "StringValue": header}}
        return entry

    def send_batch(self, entries: Sequence[dict[str, Any]]) -> dict[int, str]:
        """One SendMessageBatch of at most 10 `batch_entry()` values; the failed ones by index -> error code.
        Raises QueueUnavailable when the call itself fails."""
        if not 0 < len(entries) <= BATCH_SIZE:
            raise ValueError(f"sqs send batch needs 1-{BATCH_SIZE} entries, got {len(entries)}")
        response = self._call("send_message_batch", QueueUrl=self._url,
                              Entries=[{"Id": str(index), **entry} for index, entry in enumerate(entries)])
        return {int(failed["Id"]): str(failed.get("Code", "")) for failed in response.get("Failed", [])}

    def receive(self, *, max_messages: int, wait_s: int, visibility_timeout_s: int) -> Sequence[ReceivedMessage]:
        response = self._call(
            "receive_message",
            QueueUrl=self._url,
            MaxNumberOfMessages=max(1, min(BATCH_SIZE, max_messages)),
            WaitTimeSeconds=wait_s,
            VisibilityTimeout=visibility_timeout_s,
            MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount", "AWSTraceHeader"],
        )
        return [_received(raw) for raw in response.get("Messages", [])]

    def delete_batch(self, receipt_handles: Sequence[str]) -> None:
        for start in range(0, len(receipt_handles), BATCH_SIZE):
            chunk = receipt_handles[start:start + BATCH_SIZE]
            entries = [{"Id": str(i), "ReceiptHandle": handle} for i, handle in enumerate(chunk)]
            response = self._call("delete_message_batch", QueueUrl=self._url, Entries=entries)
            _raise_on_unexpected_failures("delete", response)

    def change_visibility(self, receipt_handle: str, timeout_s: int) -> None:
        try:
            self._call("change_message_visibility", QueueUrl=self._url, ReceiptHandle=receipt_handle,
                       VisibilityTimeout=timeout_s)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _STALE_HANDLE_CODES:
                raise

    def change_visibility_batch(self, receipt_handles: Sequence[str], timeout_s: int) -> None:
        for start in range(0, len(receipt_handles), BATCH_SIZE):
            chunk = receipt_handles[start:start + BATCH_SIZE]
            entries = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": timeout_s}
                for i, handle in enumerate(chunk)
            ]
            response = self._call("change_message_visibility_batch", QueueUrl=self._url, Entries=entries)
            _raise_on_unexpected_failures("change visibility", response)

    def ping(self) -> None:
        self._call("get_queue_attributes", QueueUrl=self._url, AttributeNames=["QueueArn"])

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status >= 500 or code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
                                         "ThrottlingException", "RequestThrottled"):
                raise QueueUnavailable(f"sqs {operation} failed: {code or status}") from exc
            raise
        except BotoCoreError as exc:
            raise QueueUnavailable(f"sqs {operation} failed: {exc}") from exc


def _raise_on_unexpected_failures(action: str, response: dict[str, Any]) -> None:
    failed = [entry for entry in response.get("Failed", []) if entry.get("Code") not in _STALE_HANDLE_CODES]
    if failed:
        codes = sorted({str(entry.get("Code")) for entry in failed})
        if any(entry.get("SenderFault") for entry in failed):
            raise ValueError(f"sqs batch {action} refused {len(failed)} entries: {', '.join(codes)}")
        raise QueueUnavailable(f"sqs batch {action} failed for {len(failed)} entries: {', '.join(codes)}")


def _received(raw: dict[str, Any]) -> ReceivedMessage:
    attributes = raw.get("Attributes", {})
    body = raw.get("Body", "")
    sent_ms = int(attributes.get("SentTimestamp", "0") or 0)
    return ReceivedMessage(
        message=decode(body),
        receipt_handle=raw["ReceiptHandle"],
        message_id=raw.get("MessageId", ""),
        receive_count=int(attributes.get("ApproximateReceiveCount", "1") or 1),
        sent_at=datetime.fromtimestamp(sent_ms / 1000, UTC),
        trace_header=attributes.get("AWSTraceHeader"),
        raw_body=body,
    )
