"""JobQueue on SQS: {"jobId","traceId"} messages (a scheduled job's with its DelaySeconds), long-poll receive,
batched deletes and visibility changes.

A job's first message (its submit's) is marked `"submit":true`: on its first receive its worker may run the job
before claiming it, once a consistent read shows it PENDING (runtime/domain/lazy_claim.py). A SendMessageBatch holds
at most SQS_BATCH_BYTES in all, so batches are cut by size as well as by count (`size_bounded_batches`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from runtime.adapters.aws_errors import SQS_UNAVAILABLE_CODES, error_code, outages_as
from runtime.domain.ports import QUEUE_BATCH_LIMIT, JobMessage, QueueUnavailable, ReceivedMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType
    from mypy_boto3_sqs.type_defs import (
        BatchResultErrorEntryTypeDef,
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
        MessageSystemAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

# A receipt handle that no longer names an in-flight message: the message is gone or redelivered already,
# so there is nothing left to change or delete.
_STALE_HANDLE_CODES = frozenset(
    {"ReceiptHandleIsInvalid", "AWS.SimpleQueueService.MessageNotInflight", "MessageNotInflight"}
)

# What depth() reads, in the order it answers them.
_DEPTH_ATTRIBUTES: tuple[QueueAttributeNameType, ...] = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


# What SQS accepts per SendMessageBatch (bodies and attributes of all entries), and what each entry's attributes (the
# trace header) and framing are counted as at most when a batch is cut by size.
SQS_BATCH_BYTES = 262_144
ENTRY_OVERHEAD_BYTES = 1_024


def encode(message: JobMessage) -> str:
    document: dict[str, Any] = {"jobId": message.job_id, "traceId": message.trace_id}
    if message.from_submit:
        document["submit"] = True
    return json.dumps(document, separators=(",", ":"))


def json_object(body: str) -> dict[str, Any] | None:
    """The JSON object in a message body, or None when it is not one (a poison message)."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def decode(body: str) -> JobMessage | None:
    """The job message in `body`, or None for anything else (a poison message)."""
    document = json_object(body)
    if document is None:
        return None
    job_id, trace_id = document.get("jobId"), document.get("traceId", "")
    if not isinstance(job_id, str) or not job_id or not isinstance(trace_id, str):
        return None
    # Only a literal true marks a submit's message: anything else is claimed first.
    return JobMessage(job_id=job_id, trace_id=trace_id, from_submit=document.get("submit") is True)


def size_bounded_batches(messages: Sequence[OutgoingMessage]) -> list[range]:
    """`messages` cut into consecutive batches SendMessageBatch takes: at most QUEUE_BATCH_LIMIT entries and
    SQS_BATCH_BYTES in all (each entry counted with ENTRY_OVERHEAD_BYTES for its attributes)."""
    batches: list[range] = []
    start, size = 0, 0
    for index, outgoing in enumerate(messages):
        entry = len(outgoing.body.encode("utf-8")) + ENTRY_OVERHEAD_BYTES
        if index > start and (index - start >= QUEUE_BATCH_LIMIT or size + entry > SQS_BATCH_BYTES):
            batches.append(range(start, index))
            start, size = index, 0
        size += entry
    if start < len(messages):
        batches.append(range(start, len(messages)))
    return batches


@dataclass(frozen=True)
class OutgoingMessage:
    """A message ready to send: its body and the X-Ray header of the sender's context (or None)."""

    body: str
    trace_header: str | None
    delay_s: int = 0  # SQS DelaySeconds (0-900): hidden that long after the send


class SqsJobQueue:
    """Takes the process's SQS client (runtime.aws_clients). `trace_header` (e.g. tracing.current_trace_header)
    gives the X-Ray header to send as the AWSTraceHeader system attribute, or None when tracing is off."""

    def __init__(
        self, client: SQSClient, queue_url: str, *, trace_header: Callable[[], str | None] | None = None
    ) -> None:
        self._client = client
        self._url = queue_url
        self._trace_header = trace_header

    def send(self, message: JobMessage) -> None:
        outgoing = self.outgoing(message)
        kwargs: dict[str, Any] = {}
        if outgoing.trace_header:
            kwargs["MessageSystemAttributes"] = _trace_attribute(outgoing.trace_header)
        if outgoing.delay_s:
            kwargs["DelaySeconds"] = outgoing.delay_s
        with _translated("send_message"):
            self._client.send_message(QueueUrl=self._url, MessageBody=outgoing.body, **kwargs)

    def outgoing(self, message: JobMessage) -> OutgoingMessage:
        """The message as sent (call it in the sender's context: it reads the current trace header, unless the
        message carries its own)."""
        header = message.trace_header
        if header is None and self._trace_header is not None:
            header = self._trace_header()
        return OutgoingMessage(body=encode(message), trace_header=header or None, delay_s=message.delay_s)

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> dict[int, str]:
        """One SendMessageBatch of at most QUEUE_BATCH_LIMIT messages; the failed ones by index -> error code.
        Raises QueueUnavailable when the call itself fails."""
        if not 0 < len(messages) <= QUEUE_BATCH_LIMIT:
            raise ValueError(f"sqs send batch needs 1-{QUEUE_BATCH_LIMIT} entries, got {len(messages)}")
        entries: list[SendMessageBatchRequestEntryTypeDef] = []
        for index, outgoing in enumerate(messages):
            entry: SendMessageBatchRequestEntryTypeDef = {"Id": str(index), "MessageBody": outgoing.body}
            if outgoing.trace_header:
                entry["MessageSystemAttributes"] = _trace_attribute(outgoing.trace_header)
            if outgoing.delay_s:
                entry["DelaySeconds"] = outgoing.delay_s
            entries.append(entry)
        with _translated("send_message_batch"):
            response = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
        return {int(failed["Id"]): str(failed.get("Code", "")) for failed in response.get("Failed", [])}

    def send_many(
        self, messages: Sequence[JobMessage], *, may_start: Callable[[], bool] | None = None
    ) -> frozenset[int]:
        unsent: set[int] = set()
        outgoing = [self.outgoing(message) for message in messages]
        for batch in size_bounded_batches(outgoing):
            if may_start is not None and not may_start():
                unsent.update(batch)
                continue
            try:
                failed = self.send_batch(outgoing[batch.start : batch.stop])
            except QueueUnavailable:
                unsent.update(batch)
                continue
            unsent.update(batch.start + index for index in failed)
        return frozenset(unsent)

    def depth(self) -> tuple[int, int, int]:
        """The queue's approximate (visible, in flight, delayed) message counts: one GetQueueAttributes."""
        with _translated("get_queue_attributes"):
            attributes = self._client.get_queue_attributes(QueueUrl=self._url, AttributeNames=list(_DEPTH_ATTRIBUTES))[
                "Attributes"
            ]
        visible, in_flight, delayed = (int(attributes.get(name, "0")) for name in _DEPTH_ATTRIBUTES)
        return visible, in_flight, delayed

    def receive(self, *, max_messages: int, wait_s: int, visibility_timeout_s: int) -> Sequence[ReceivedMessage]:
        with _translated("receive_message"):
            response = self._client.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=max(1, min(QUEUE_BATCH_LIMIT, max_messages)),
                WaitTimeSeconds=wait_s,
                VisibilityTimeout=visibility_timeout_s,
                MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount", "AWSTraceHeader"],
            )
        return [_received(raw) for raw in response.get("Messages", [])]

    def delete_batch(self, receipt_handles: Sequence[str]) -> None:
        for start in range(0, len(receipt_handles), QUEUE_BATCH_LIMIT):
            chunk = receipt_handles[start : start + QUEUE_BATCH_LIMIT]
            entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": handle} for i, handle in enumerate(chunk)
            ]
            with _translated("delete_message_batch"):
                response = self._client.delete_message_batch(QueueUrl=self._url, Entries=entries)
            _raise_on_unexpected_failures("delete", response.get("Failed", []))

    def change_visibility(self, receipt_handle: str, timeout_s: int) -> None:
        try:
            with _translated("change_message_visibility"):
                self._client.change_message_visibility(
                    QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=timeout_s
                )
        except ClientError as exc:
            if error_code(exc) not in _STALE_HANDLE_CODES:
                raise

    def change_visibility_batch(self, receipt_handles: Sequence[str], timeout_s: int) -> None:
        for start in range(0, len(receipt_handles), QUEUE_BATCH_LIMIT):
            chunk = receipt_handles[start : start + QUEUE_BATCH_LIMIT]
            entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": timeout_s}
                for i, handle in enumerate(chunk)
            ]
            with _translated("change_message_visibility_batch"):
                response = self._client.change_message_visibility_batch(QueueUrl=self._url, Entries=entries)
            _raise_on_unexpected_failures("change visibility", response.get("Failed", []))

    def ping(self) -> None:
        with _translated("get_queue_attributes"):
            self._client.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])


def _trace_attribute(header: str) -> Mapping[Literal["AWSTraceHeader"], MessageSystemAttributeValueTypeDef]:
    return {"AWSTraceHeader": {"DataType": "String", "StringValue": header}}


def _translated(operation: str) -> contextlib.AbstractContextManager[None]:
    """An outage (5xx, throttling, missing queue, no connection) becomes QueueUnavailable; the rest passes."""
    return outages_as(QueueUnavailable, f"sqs {operation}", SQS_UNAVAILABLE_CODES)


def _raise_on_unexpected_failures(action: str, failures: Sequence[BatchResultErrorEntryTypeDef]) -> None:
    failed = [entry for entry in failures if entry.get("Code") not in _STALE_HANDLE_CODES]
    if failed:
        codes = sorted({str(entry.get("Code")) for entry in failed})
        if any(entry.get("SenderFault") for entry in failed):
            raise ValueError(f"sqs batch {action} refused {len(failed)} entries: {', '.join(codes)}")
        raise QueueUnavailable(f"sqs batch {action} failed for {len(failed)} entries: {', '.join(codes)}")


def _received(raw: MessageTypeDef) -> ReceivedMessage:
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
