"""CallbackQueue on SQS: one JSON message per delivery to make, delayed with SQS's per-message DelaySeconds."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from runtime.adapters.aws_errors import SQS_UNAVAILABLE_CODES, outages_as
from runtime.adapters.sqs_queue import json_object
from runtime.domain.ports import CallbackMessage, QueueUnavailable
from runtime.domain.schedule import SQS_MAX_DELAY_S

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# SQS's longest per-message delay; longer waits are chained hops (CallbackMessage.not_before).
MAX_DELAY_S = SQS_MAX_DELAY_S


def encode(message: CallbackMessage) -> str:
    document: dict[str, Any] = {"jobId": message.job_id, "eventId": message.event_id, "traceId": message.trace_id}
    if message.not_before is not None:
        document["notBefore"] = message.not_before
    if message.first_attempt_at is not None:
        document["firstAttemptAt"] = message.first_attempt_at
    return json.dumps(document, separators=(",", ":"))


def decode(body: str) -> CallbackMessage | None:
    """The message in `body`, or None for anything else (a poison message)."""
    document = json_object(body)
    if document is None:
        return None
    job_id, event, trace_id = document.get("jobId"), document.get("eventId"), document.get("traceId", "")
    not_before, first = document.get("notBefore"), document.get("firstAttemptAt")
    if not isinstance(job_id, str) or not job_id or not isinstance(event, str) or not event:
        return None
    if not isinstance(trace_id, str):
        return None
    if any(
        value is not None and (not isinstance(value, int) or isinstance(value, bool)) for value in (not_before, first)
    ):
        return None
    return CallbackMessage(
        job_id=job_id, event_id=event, trace_id=trace_id, not_before=not_before, first_attempt_at=first
    )


class SqsCallbackQueue:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, message: CallbackMessage, *, delay_s: int = 0) -> None:
        if not 0 <= delay_s <= MAX_DELAY_S:
            raise ValueError(f"sqs delay must be 0-{MAX_DELAY_S} s, got {delay_s}")
        with outages_as(QueueUnavailable, "sqs send_message", SQS_UNAVAILABLE_CODES):
            self._client.send_message(QueueUrl=self._url, MessageBody=encode(message), DelaySeconds=delay_s)
