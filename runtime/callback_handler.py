"""Lambda handler for the callback queue: delivers each queued callback event (runtime/callbacks/delivery.py), and
reports store or queue errors as batch item failures so SQS brings the message back."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from runtime.adapters.sqs_callback_queue import decode
from runtime.callbacks.delivery import CallbackDeliverer
from runtime.observability import logs, tracing
from runtime.observability.names import LogEvent
from runtime.sqs_batch import process_records

if TYPE_CHECKING:
    from runtime.settings import Settings


class CallbackRecords:
    """The per-record logic, with the deliverer injected (tests pass one wired to fakes or to moto)."""

    def __init__(self, deliverer: CallbackDeliverer) -> None:
        self._deliverer = deliverer

    def handle_record(self, record: SQSRecord) -> str:
        return self.handle_message(record.body or "", record.message_id, record.attributes.aws_trace_header)

    def handle_message(self, body: str, message_id: str, trace_header: str | None) -> str:
        """Delivers one queued message (its body, SQS id and AWSTraceHeader); returns the outcome's name. Raises
        when the store or the queue failed, so that the message comes back."""
        message = decode(body)
        if message is None:
            # It names no job: retrying it would only loop. Count it handled.
            logs.log_event(
                LogEvent.CALLBACK_POISON_MESSAGE,
                level="warning",
                messageId=message_id,
                body=body[:200],
            )
            return "poison"
        with (
            logs.bind(trace_id=message.trace_id or None, job_id=message.job_id),
            tracing.continue_trace("callback.delivery", trace_header, trace_id=message.trace_id),
        ):
            try:
                return self._deliverer.deliver(message).value
            except Exception as exc:
                logs.log_event(
                    LogEvent.CALLBACK_RECORD_FAILED,
                    level="error",
                    messageId=message_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
                raise


def handle_event(event: dict[str, Any], context: Any, *, records: CallbackRecords) -> dict[str, Any]:
    """Runs every record; returns {"batchItemFailures": [...]} naming the records to be retried."""
    return process_records(event, context, records.handle_record, category="callbacks")


def build_deliverer(settings: Settings) -> CallbackDeliverer:
    """The deliverer wired to the settings' table, access table and callback queue (one client per service)."""
    from runtime import aws_clients
    from runtime.adapters.dynamodb.access_store import DynamoDbAccessStore
    from runtime.adapters.dynamodb.store import DynamoDbJobStore
    from runtime.adapters.sqs_callback_queue import SqsCallbackQueue
    from runtime.callbacks import http_post
    from runtime.callbacks.addresses import CallbackUrlPolicy
    from runtime.domain.callbacks import RetrySchedule
    from runtime.domain.ports import UtcClock

    if not settings.callback_queue_url:
        raise RuntimeError("callback delivery needs JOBS_CALLBACK_QUEUE_URL (or <ssm path>/callback-queue-url)")
    dynamodb = aws_clients.client("dynamodb", settings)
    timeout_s = settings.callback_timeout_s
    return CallbackDeliverer(
        store=DynamoDbJobStore(dynamodb, settings.table_name),
        queue=SqsCallbackQueue(aws_clients.client("sqs", settings), settings.callback_queue_url),
        secrets=DynamoDbAccessStore(dynamodb, settings.access_table_name),
        policy=CallbackUrlPolicy(allow_loopback_http=settings.callback_allow_loopback),
        poster=lambda target, body, headers: http_post.post(target, body, headers, timeout_s=timeout_s),
        schedule=RetrySchedule(
            base_s=settings.callback_retry_base_s,
            max_s=settings.callback_retry_max_s,
            window_s=settings.callback_retry_window_s,
        ),
        clock=UtcClock(),
    )


@functools.cache
def _default_records() -> CallbackRecords:
    # Built once per Lambda container, on the first event, so that importing this module stays cheap.
    from runtime import observability
    from runtime.settings import get_settings

    settings = get_settings()
    observability.configure(settings)
    return CallbackRecords(build_deliverer(settings))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return handle_event(event, context, records=_default_records())
    finally:
        tracing.flush()
