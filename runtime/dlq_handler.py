"""Lambda handler for the dead-letter queue. A dead letter is no proof of failure (a worker killed with prefetched
messages costs each a receive and no attempt), so the job record decides (runtime/domain/redrive.py): a job with
attempts left is redriven (a fresh message on its own priority queue, at most MAX_REDRIVES times), any other
non-terminal job without a live lease is marked FAILED_FINAL with why. Store and queue errors are reported as batch
item failures so SQS retries them."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from runtime.adapters.sqs_queue import decode
from runtime.domain.job import Job, JobError, JobStatus
from runtime.domain.ports import Clock, JobMessage, JobQueue, JobStore, OnCallbackDue, UtcClock
from runtime.domain.redrive import MAX_REDRIVES, Verdict, verdict
from runtime.domain.schedule import DelayWindow
from runtime.observability import logs, metrics, tracing
from runtime.observability.names import JOB_TYPE_DIMENSION, LogEvent, Metric
from runtime.sqs_batch import process_records

DEAD_LETTERED = "dead_lettered"
# Decisions made on a job read that a concurrent write made stale before the record gives up (and is retried).
_DECISION_ROUNDS = 2


class JobLeased(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} is processing under a live lease; retry the dead letter later")


class JobChanging(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} changed while its dead letter was decided; retry the dead letter later")


class DeadLetterHandler:
    """The per-record logic, with the store and the jobs queue injected (tests pass fakes, `handler` the DynamoDB
    store and the priority queues). `max_attempts` is the workers' (Settings.max_attempts): a job with fewer
    attempts since its last manual retry is redriven."""

    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        clock: Clock | None = None,
        *,
        max_attempts: int,
        delay_window: DelayWindow | None = None,
        on_callback_due: OnCallbackDue | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._clock: Clock = clock or UtcClock()
        self._max_attempts = max_attempts
        self._window = delay_window or DelayWindow()
        self._on_callback_due = on_callback_due

    def handle_record(self, record: SQSRecord) -> str:
        """Returns what happened: "redriven", "already_redriven", "failed_final", "already_terminal" or "poison".
        Store and queue errors raise (after a log line), so that the record becomes a batch item failure and SQS
        delivers it again."""
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
            for _ in range(_DECISION_ROUNDS):
                job = self._store.get(message.job_id)
                now = self._clock.now()
                decided = verdict(job, now=now, max_attempts=self._max_attempts, dead_letter_id=record.message_id)
                if decided is Verdict.LEASED:
                    # A live worker holds the job: let it finish. The record comes back after the DLQ's
                    # visibility timeout; if that worker died meanwhile, its lease has expired by then.
                    raise JobLeased(message.job_id)
                if decided is Verdict.UNCHANGED:
                    # Already SUCCEEDED/FAILED_FINAL/CANCELED (or unknown): a terminal job is never moved again.
                    logs.log_event(
                        LogEvent.DLQ_JOB_UNCHANGED,
                        status=job.status.value if job is not None else None,
                        found=job is not None,
                    )
                    return "already_terminal"
                assert job is not None
                if decided in (Verdict.REDRIVE, Verdict.RESEND):
                    outcome = self._redrive(job, record.message_id, now, resend=decided is Verdict.RESEND)
                else:
                    outcome = self._fail_final(job, decided, receive_count, now)
                if outcome is not None:
                    return outcome
            raise JobChanging(message.job_id)

    def _redrive(self, job: Job, dead_letter_id: str, now: datetime, *, resend: bool) -> str | None:
        """Counts the redrive (one conditional write), then publishes the job afresh; None when the job changed
        since it was read. A RESEND is this same dead letter back after its send failed: counted already, it only
        publishes. A send that fails raises, so the record is retried and resends (the counter does not stop it);
        the republisher's sweep does not cover this for every job (it sweeps PENDING jobs only, not FAILED or
        lease-expired PROCESSING ones), so the retry is what carries the job on. The write comes first so that of
        concurrent dead letters of one job only one publishes."""
        run_at = job.run_at if job.run_at is not None and job.run_at > now else None
        # A scheduled job keeps its delay. Only a PENDING job can be not yet due (the claim refuses it before its
        # runAt); its pending marker moves as the republisher's would, so the sweep does not publish it too.
        delay_s = self._window.message_delay_s(run_at, now)
        marker = self._window.pending_marker(run_at, now) if job.status is JobStatus.PENDING else None
        if not resend and not self._store.mark_redriven(
            job.job_id, seen=job, dead_letter_id=dead_letter_id, limit=MAX_REDRIVES, now=now, pending_since=marker
        ):
            current = self._store.get(job.job_id)
            if current is not None and current.redrives > job.redrives:
                # Another dead letter of the job (a duplicate message) redrove it between our read and our write.
                logs.log_event(LogEvent.DLQ_JOB_REDRIVE_RACED, redrives=current.redrives)
                return "already_redriven"
            return None
        # Beyond the SQS delay window (a scheduled job far ahead): nothing to send, the republisher releases it
        # from the marker written above, as for any job held back at submit.
        if delay_s is not None:
            self._queue.send(JobMessage.for_job(job, delay_s=delay_s))
        redrives = job.redrives if resend else job.redrives + 1
        metrics.emit({Metric.JOBS_REDRIVEN: (1.0, "Count")}, dimensions={JOB_TYPE_DIMENSION: job.job_type})
        logs.log_event(
            LogEvent.DLQ_JOB_REDRIVEN,
            level="warning",
            jobType=job.job_type,
            status=job.status.value,
            attempts=job.attempts_since_retry,
            redrives=redrives,
            delayS=delay_s or None,
            resent=resend or None,
        )
        return "redriven"

    def _fail_final(self, job: Job, decided: Verdict, receive_count: str, now: datetime) -> str | None:
        moved = f"message moved to the dead-letter queue after {receive_count} receives without a final outcome"
        if decided is Verdict.REDRIVE_LIMIT:
            why = (
                f"{moved}, and it had been redriven {job.redrives} times already (the most allowed): its workers "
                "keep stopping before it ends"
            )
        else:
            why = f"{moved}, with its {job.attempts_since_retry} attempts used up"
        error = JobError(DEAD_LETTERED, why, permanent=True)
        # Whether the job has a callback decides what the verdict writes (its callback URL never changes).
        failed = self._store.fail_final(job.job_id, error=error, now=now, callback_due=job.callback is not None)
        if failed is None:
            return None  # it changed since it was read (a worker's lease, an end): decide again
        if failed.callback is not None and self._on_callback_due is not None:
            self._on_callback_due(failed, JobStatus.FAILED_FINAL, now)
        metrics.emit({Metric.JOBS_FAILED_FINAL: (1.0, "Count")}, dimensions={JOB_TYPE_DIMENSION: failed.job_type})
        logs.log_event(
            LogEvent.DLQ_JOB_FAILED_FINAL,
            level="warning",
            jobType=failed.job_type,
            receiveCount=receive_count,
            reason=decided.value,
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
    from runtime.adapters.priority_queue import sqs_priority_queue
    from runtime.settings import get_settings

    settings = get_settings()
    observability.configure(settings)
    store = DynamoDbJobStore(aws_clients.client("dynamodb", settings), settings.table_name)
    sqs = aws_clients.client("sqs", settings)
    # The workers' queues and attempt budget, from the same settings the workers read.
    queue = sqs_priority_queue(sqs, settings.priority_queue_urls, trace_header=tracing.current_trace_header)
    options: dict[str, Any] = {
        "max_attempts": settings.max_attempts,
        "delay_window": DelayWindow(settings.schedule_delay_window_s),
    }
    if not settings.callback_queue_url:
        return DeadLetterHandler(store, queue, **options)
    from runtime.adapters.sqs_callback_queue import SqsCallbackQueue
    from runtime.callbacks.outbox import CallbackOutbox

    outbox = CallbackOutbox(store=store, queue=SqsCallbackQueue(sqs, settings.callback_queue_url), clock=UtcClock())
    return DeadLetterHandler(
        store,
        queue,
        on_callback_due=lambda job, status, now: outbox.enqueue(job, status=status, entered_at=now),
        **options,
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return handle_event(event, context, dead_letters=_default_dead_letters())
    finally:
        # Lambda may freeze the environment once the handler returns: spans waiting in the batch go out now.
        tracing.flush()
