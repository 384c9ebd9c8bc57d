"""At-least-once hand-over of terminal jobs to the callback queue.

The terminal write of a job with a callback also puts it in the callback outbox (a sparse index, see
runtime/adapters/dynamodb/schema.py CALLBACK_OUTBOX_INDEX), in the same conditional update. The process that made
the write then sends the delivery message and takes the job out of the outbox. A process that dies in between
leaves the job in the outbox, and the worker's republisher sweep (runtime/worker/republisher.py) sends it after
`republish_after_s`: every terminal job's callback is enqueued within Settings.republish_bound_s of its terminal
write (75 s by default), perhaps twice (deliveries carry a stable event id for that).
"""

from __future__ import annotations

from datetime import datetime

from runtime.domain.callbacks import event_id, event_id_for
from runtime.domain.job import Job, JobStatus
from runtime.domain.ports import CallbackMessage, CallbackQueue, Clock, JobStore
from runtime.observability import logs
from runtime.observability.names import LogEvent


class CallbackOutbox:
    def __init__(self, *, store: JobStore, queue: CallbackQueue, clock: Clock) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock

    def enqueue(self, job: Job, *, status: JobStatus, entered_at: datetime) -> bool:
        """Right after the terminal write of `job` (any version of it: only its id, trace id and callback are read)
        that moved it to `status` at `entered_at` with callback_due. False when it is left to the sweep."""
        message = CallbackMessage(
            job_id=job.job_id, event_id=event_id_for(job.job_id, status, entered_at), trace_id=job.trace_id
        )
        return self._send(message, due_at=entered_at)

    def _send(self, message: CallbackMessage, *, due_at: datetime) -> bool:
        try:
            self._queue.send(message)
        except Exception as exc:  # noqa: BLE001 - the job stays in the outbox: the sweep sends it
            logs.log_event(
                LogEvent.CALLBACK_ENQUEUE_FAILED,
                level="warning",
                jobId=message.job_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            return False
        try:
            self._store.mark_callback_enqueued(message.job_id, due_at=due_at)
        except Exception as exc:  # noqa: BLE001 - the sweep sends it again: one duplicate delivery at worst
            logs.log_event(
                LogEvent.CALLBACK_ENQUEUE_FAILED,
                level="warning",
                jobId=message.job_id,
                error=f"{type(exc).__name__}: {exc}",
                sent=True,
            )
        return True

    def sweep(self, *, older_than: datetime, limit: int) -> int:
        """Sends the delivery messages of outbox entries due before `older_than`; returns how many went out."""
        sent = 0
        for entry in self._store.due_callbacks(older_than=older_than, limit=limit):
            now = self._clock.now()
            # The conditional move makes one sweeper of the fleet win per entry and round.
            job = self._store.move_callback_due(entry.job_id, expected_ms=entry.due_ms, now=now)
            if job is None:
                continue
            if not job.is_terminal or job.callback is None:
                # Retried by hand since: its next terminal write puts it in the outbox again.
                self._store.mark_callback_enqueued(job.job_id, due_at=now)
                continue
            if self._send(
                CallbackMessage(job_id=job.job_id, event_id=event_id(job), trace_id=job.trace_id), due_at=now
            ):
                sent += 1
                logs.log_event(LogEvent.CALLBACK_REENQUEUED, jobId=job.job_id)
        return sent
