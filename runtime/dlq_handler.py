"""Lambda handler for the dead-letter queue: marks each dead-lettered job FAILED_FINAL (only from a
non-terminal state) with why, and reports store errors as batch item failures so SQS retries them."""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from runtime.adapters.sqs_queue import decode
from runtime.domain.job import JobError, JobStatus
from runtime.domain.ports import Clock, JobStore, OnCallbackDue, UtcClock
from runtime.observability import logs, metrics, tracing
from runtime.observability.names import JOB_TYPE_DIMENSION, LogEvent, Metric
from runtime.sqs_batch import process_records

DEAD_LETTERED = "dead_lettered"


class JobLeased(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} is processing under a live lease; retry the dead letter later")


class DeadLetterHandler:
    """The per-record logic, with the store injected (tests pass fakes, `handler` the DynamoDB store)."""

    def __init__(
        self, store: JobStore, clock: Clock | None = None, *, on_callback_due: OnCallbackDue | None = None
    ) -> None:
        self._store = store
        self._clock: Clock = clock or UtcClock()
        self._on_callback_due = on_callback_due

    def handle_record(self, record: SQSRecord) -> str:
        """Returns what happened: "failed_final", "already_terminal" or "poison". Store errors raise (after
        a log line), so that the record becomes a batch item failure and SQS delivers it again."""
        try:
            return self._handle(record)
        except Exception as exc:
            logs.log_event(
                LogEvent.DLQ_RECORD_FAILED,
                level="error",
                messageId=record.message_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise

    def _handle(self, record: SQSRecord) -> str:
        message = decode(record.body or "")
        if message is None:
            # A poison body can never be matched to a job: retrying it would only loop. Count it handled.
            logs.log_event(
                LogEvent.DLQ_POISON_MESSAGE,
                level="warning",
                messageId=record.message_id,
                body=(record.body or "")[:200],
            )
            return "poison"
        receive_count = record.attributes.approximate_receive_count
        with (
            logs.bind(trace_id=message.trace_id or None, job_id=message.job_id),
            tracing.continue_trace("dlq.job", record.attributes.aws_trace_header, trace_id=message.trace_id),
        ):
            tracing.annotate(jobId=message.job_id)
            error = JobError(
                DEAD_LETTERED,
                f"message moved to the dead-letter queue after {receive_count} receives without a final outcome",
                permanent=True,
            )
            # Whether the job has a callback decides what the verdict writes (its callback URL never changes).
            before = self._store.get(message.job_id)
            has_callback = before is not None and before.callback is not None
            now = self._clock.now()
            job = self._store.fail_final(message.job_id, error=error, now=now, callback_due=has_callback)
            if job is not None and job.callback is not None and self._on_callback_due is not None:
                self._on_callback_due(job, JobStatus.FAILED_FINAL, now)
            if job is None:
                current = self._store.get(message.job_id)
                if current is not None and not current.is_terminal:
                    # A live worker holds the job: let it finish. The record comes back after the DLQ's
                    # visibility timeout; if that worker died meanwhile, its lease has expired by then.
                    raise JobLeased(message.job_id)
                # Already SUCCEEDED/FAILED_FINAL (or unknown): a terminal job is never moved again.
                logs.log_event(
                    LogEvent.DLQ_JOB_UNCHANGED,
                    status=current.status.value if current is not None else None,
                    found=current is not None,
                )
                return "already_terminal"
            metrics.emit({Metric.JOBS_FAILED_FINAL: (1.0, "Count")}, dimensions={JOB_TYPE_DIMENSION: job.job_type})
            logs.log_event(
                LogEvent.DLQ_JOB_FAILED_FINAL, level="warning", jobType=job.job_type, receiveCount=receive_count
            )
            return "failed_final"


def handle_event(event: dict[str, Any], context: Any, *, dead_letters: DeadLetterHandler) -> dict[str, Any]:
    """Runs every record; returns {"batchItemFailures": [...]} naming the records to be retried."""
    return process_records(event, context, dead_letters.handle_record, category="dlq")


@functools.cache
def _default_dead_letters() -> DeadLetterHandler:
    # Built once per Lambda container, on the first event, so that importing this module stays cheap.
    from runtime import aws_clients, observability
    from runtime.adapters.dynamodb.store import DynamoDbJobStore
    from runtime.settings import get_settings

    settings = get_settings()
    observability.configure(settings)
    store = DynamoDbJobStore(aws_clients.client("dynamodb", settings), settings.table_name)
    if not settings.callback_queue_url:
        return DeadLetterHandler(store)
    from runtime.adapters.sqs_callback_queue import SqsCallbackQueue
    from runtime.callbacks.outbox import CallbackOutbox

    outbox = CallbackOutbox(
        store=store,
        queue=SqsCallbackQueue(aws_clients.client("sqs", settings), settings.callback_queue_url),
        clock=UtcClock(),
    )
    return DeadLetterHandler(
        store, on_callback_due=lambda job, status, now: outbox.enqueue(job, status=status, entered_at=now)
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return handle_event(event, context, dead_letters=_default_dead_letters())
    finally:
        # Lambda may freeze the environment once the handler returns: spans waiting in the batch go out now.
        tracing.flush()
