"""The in-memory fakes of the ports that every unit test shares, with the same conditional semantics as the
DynamoDB/SQS adapters (one copy: a rule the adapters change is changed here once)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime.domain.callbacks import CallbackState
from runtime.domain.fingerprint import canonical_json
from runtime.domain.job import (
    RETRYABLE_TERMINAL_STATUSES,
    Job,
    JobError,
    JobStatus,
    Priority,
    Progress,
    ResultRef,
    check_transition,
)
from runtime.domain.ports import (
    QUEUE_BATCH_LIMIT,
    CallbackMessage,
    ClaimOutcome,
    CreateOutcome,
    DueCallback,
    JobMessage,
    JobPage,
    JobRecordRefused,
    JobStoreUnavailable,
    LeaseState,
    ListFilter,
    ObjectChunks,
    ObjectNotFound,
    QueueUnavailable,
    ReceivedMessage,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


def make_job(
    job_id: str = "job-1", *, job_type: str = "echo", params: dict[str, Any] | None = None, **changes: Any
) -> Job:
    job = Job(
        job_id=job_id,
        status=JobStatus.PENDING,
        job_type=job_type,
        priority=Priority.NORMAL,
        params=params if params is not None else {"value": 1},
        metadata={},
        created_at=T0,
        updated_at=T0,
        trace_id=f"trace-{job_id}",
        fingerprint="f" * 64,
        transitions={"PENDING": T0},
        pending_since=T0,
    )
    return job.replace(**changes)


class InMemoryJobStore:
    """Every write checks the same condition the DynamoDB adapter puts in its ConditionExpression."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.calls: list[str] = []
        self.unavailable = False
        # When set, `succeed` refuses a record whose params and result (or reference) pass this many bytes.
        self.record_limit: int | None = None
        self.outbox: dict[str, int] = {}  # the callback outbox: job id -> due (epoch ms)

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        if self.unavailable:
            raise JobStoreUnavailable(f"store down during {name}")

    def _move(self, job: Job, status: JobStatus, now: datetime, callback_due: bool = False, **changes: Any) -> Job:
        check_transition(job.status, status)
        if callback_due and job.callback is not None:
            self.outbox[job.job_id] = int(now.timestamp() * 1000)
            changes["callback"] = job.callback.__class__(url=job.callback.url)
        moved = job.replace(
            status=status, updated_at=now, transitions={**job.transitions, status.value: now}, **changes
        )
        self.jobs[job.job_id] = moved
        return moved

    def create(self, job: Job) -> CreateOutcome:
        self._enter("create")
        with self.lock:
            if job.job_id in self.jobs:
                return CreateOutcome(created=False, job=self.jobs[job.job_id])
            self.jobs[job.job_id] = job
            return CreateOutcome(created=True, job=job)

    def get(self, job_id: str) -> Job | None:
        self._enter("get")
        with self.lock:
            return self.jobs.get(job_id)

    def get_many(self, job_ids: Sequence[str]) -> Mapping[str, Job | None]:
        self._enter("get_many")
        with self.lock:
            return {job_id: self.jobs.get(job_id) for job_id in job_ids}

    def claim(self, job_id: str, *, now: datetime, lease_until: datetime) -> ClaimOutcome:
        self._enter("claim")
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return ClaimOutcome(claimed=False, job=None)
            expired = (
                job.status is JobStatus.PROCESSING and job.lease_expires_at is not None and job.lease_expires_at < now
            )
            if job.status not in (JobStatus.PENDING, JobStatus.FAILED) and not expired:
                return ClaimOutcome(claimed=False, job=job)
            if job.run_at is not None and job.run_at > now:
                return ClaimOutcome(claimed=False, job=job)
            claimed = self._move(
                job,
                JobStatus.PROCESSING,
                now,
                attempts=job.attempts + 1,
                lease_expires_at=lease_until,
                pending_since=None,
                progress=None,
            )
            return ClaimOutcome(claimed=True, job=claimed)

    def _owned(
        self, job_id: str, attempt: int, started_at: datetime | None = None, now: datetime | None = None
    ) -> Job | None:
        job = self.jobs.get(job_id)
        if job is not None and started_at is not None:
            # An attempt run unclaimed: the job must still be PENDING before it, and due; the outcome write also
            # records the claim's part (as the DynamoDB store's one update does).
            if job.status is not JobStatus.PENDING or job.attempts != attempt - 1:
                return None
            if job.run_at is not None and now is not None and job.run_at > now:
                return None
            return job.replace(
                status=JobStatus.PROCESSING,
                attempts=attempt,
                pending_since=None,
                progress=None,
                transitions={**job.transitions, JobStatus.PROCESSING.value: started_at},
            )
        if job is None or job.status is not JobStatus.PROCESSING or job.attempts != attempt:
            return None
        return job

    def extend_lease(self, job_id: str, *, attempt: int, lease_until: datetime) -> LeaseState:
        self._enter("extend_lease")
        with self.lock:
            job = self._owned(job_id, attempt)
            if job is None:
                return LeaseState.LOST
            self.jobs[job_id] = job.replace(lease_expires_at=lease_until)
            return LeaseState.CANCEL_REQUESTED if job.cancel_requested else LeaseState.HELD

    def cancel(self, job_id: str, *, now: datetime, callback_due: bool = False) -> Job | None:
        self._enter("cancel")
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.status not in (JobStatus.PENDING, JobStatus.FAILED):
                return None
            return self._move(job, JobStatus.CANCELED, now, callback_due, lease_expires_at=None, pending_since=None)

    def request_cancel(self, job_id: str, *, now: datetime) -> Job | None:
        self._enter("request_cancel")
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.status is not JobStatus.PROCESSING:
                return None
            self.jobs[job_id] = job.replace(cancel_requested=True, updated_at=now)
            return self.jobs[job_id]

    def release(self, job_id: str, *, attempt: int, now: datetime) -> bool:
        self._enter("release")
        with self.lock:
            job = self._owned(job_id, attempt)
            if job is None:
                return False
            self.jobs[job_id] = job.replace(
                attempts=job.attempts - 1, lease_expires_at=datetime.fromtimestamp(0, UTC), updated_at=now
            )
            return True

    def set_progress(self, job_id: str, *, attempt: int, progress: Progress, now: datetime) -> bool:
        self._enter("set_progress")
        with self.lock:
            job = self._owned(job_id, attempt)
            if job is None:
                return False
            self.jobs[job_id] = job.replace(progress=progress, updated_at=now)
            return True

    def finish_canceled(
        self,
        job_id: str,
        *,
        attempt: int,
        now: datetime,
        progress: Progress | None = None,
        callback_due: bool = False,
    ) -> bool:
        self._enter("finish_canceled")
        with self.lock:
            job = self._owned(job_id, attempt)
            if job is None or not job.cancel_requested:
                return False
            self._move(
                job, JobStatus.CANCELED, now, callback_due, lease_expires_at=None, progress=progress or job.progress
            )
            return True

    def succeed(
        self,
        job_id: str,
        *,
        attempt: int,
        result: dict[str, Any] | None,
        now: datetime,
        result_ref: ResultRef | None = None,
        progress: Progress | None = None,
        callback_due: bool = False,
        started_at: datetime | None = None,
    ) -> bool:
        self._enter("succeed")
        with self.lock:
            job = self._owned(job_id, attempt, started_at, now)
            if job is None:
                return False
            # The record's limit, in the canonical JSON of what it would keep (DynamoDB: 400 KB per item).
            kept = result if result_ref is None else dataclasses.asdict(result_ref)
            if self.record_limit is not None and len(canonical_json([job.params, kept]).encode()) > self.record_limit:
                raise JobRecordRefused(f"record over {self.record_limit} bytes")
            self._move(
                job,
                JobStatus.SUCCEEDED,
                now,
                callback_due,
                result=result,
                result_ref=result_ref,
                error=None,
                lease_expires_at=None,
                progress=progress or job.progress,
            )
            return True

    def fail(
        self,
        job_id: str,
        *,
        attempt: int,
        error: JobError,
        final: bool,
        now: datetime,
        progress: Progress | None = None,
        callback_due: bool = False,
        started_at: datetime | None = None,
    ) -> bool:
        self._enter("fail")
        with self.lock:
            job = self._owned(job_id, attempt, started_at, now)
            if job is None:
                return False
            status = JobStatus.FAILED_FINAL if final else JobStatus.FAILED
            self._move(
                job,
                status,
                now,
                callback_due and final,
                error=error,
                lease_expires_at=None,
                progress=progress or job.progress,
            )
            return True

    def fail_final(self, job_id: str, *, error: JobError, now: datetime, callback_due: bool = False) -> Job | None:
        self._enter("fail_final")
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.is_terminal:
                return None
            if job.status is JobStatus.PROCESSING and job.lease_expires_at is not None and job.lease_expires_at >= now:
                return None
            return self._move(
                job, JobStatus.FAILED_FINAL, now, callback_due, error=error, lease_expires_at=None, pending_since=None
            )

    def requeue(self, job_id: str, *, now: datetime, pending_since: datetime | None = None) -> Job | None:
        self._enter("requeue")
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.status not in RETRYABLE_TERMINAL_STATUSES:
                return None
            return self._move(
                job,
                JobStatus.PENDING,
                now,
                pending_since=pending_since or now,
                retry_base=job.attempts,
                error=None,
                cancel_requested=False,
                redrives=0,
                redriven_by=None,
            )

    def mark_republished(self, job_id: str, *, expected_pending_since: datetime, pending_since: datetime) -> bool:
        self._enter("mark_republished")
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.status is not JobStatus.PENDING or job.pending_since != expected_pending_since:
                return False
            self.jobs[job_id] = job.replace(pending_since=pending_since)
            return True

    def mark_redriven(
        self, job_id: str, *, seen: Job, dead_letter_id: str, limit: int, now: datetime, pending_since: datetime | None
    ) -> bool:
        self._enter("mark_redriven")
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or (job.status, job.attempts, job.redrives) != (seen.status, seen.attempts, seen.redrives):
                return False
            if job.redrives >= limit or (job.lease_expires_at is not None and job.lease_expires_at >= now):
                return False
            changes: dict[str, Any] = {"redrives": job.redrives + 1, "redriven_by": dead_letter_id}
            if pending_since is not None:
                changes["pending_since"] = pending_since
            self.jobs[job_id] = job.replace(**changes)
            return True

    def stuck_pending(self, *, older_than: datetime, limit: int) -> Sequence[Job]:
        self._enter("stuck_pending")
        with self.lock:
            stuck = [
                j
                for j in self.jobs.values()
                if j.status is JobStatus.PENDING and j.pending_since is not None and j.pending_since < older_than
            ]
        return sorted(stuck, key=lambda j: j.pending_since or j.created_at)[:limit]

    def advance_key_generation(self, head_job_id: str, *, expected: int, new: int, keep_until: int) -> bool:
        self._enter("advance_key_generation")
        with self.lock:
            head = self.jobs.get(head_job_id)
            if head is None or head.key_generation != expected:
                return False
            self.jobs[head_job_id] = head.replace(key_generation=new, expires_at=keep_until)
            return True

    def find_by_idempotency_key(self, idempotency_key: str) -> Sequence[str]:
        self._enter("find_by_idempotency_key")
        with self.lock:
            return [job.job_id for job in self.jobs.values() if job.idempotency_key == idempotency_key]

    def list_jobs(self, scope: ListFilter, *, limit: int, start_key: Mapping[str, str] | None) -> JobPage:
        """Newest first by (createdAt, jobId), as the listing indexes sort; the start key is the last job's id."""
        tenant, status, job_type = scope.tenant, scope.status, scope.job_type
        self._enter("list_jobs")
        with self.lock:
            ordered = sorted(
                (
                    job
                    for job in self.jobs.values()
                    if job.tenant == tenant and status in (None, job.status) and job_type in (None, job.job_type)
                ),
                key=lambda job: (job.created_at, job.job_id),
                reverse=True,
            )
        if start_key is not None:
            after = self.jobs[start_key["jobId"]]
            ordered = [job for job in ordered if (job.created_at, job.job_id) < (after.created_at, after.job_id)]
        page = ordered[:limit]
        more = len(ordered) > limit
        return JobPage(jobs=page, next_key={"jobId": page[-1].job_id} if more else None)

    def set_status(self, job_id: str, status: JobStatus) -> None:
        """Puts a job in `status` directly (test set-up, no transition check)."""
        with self.lock:
            self.jobs[job_id] = self.jobs[job_id].replace(status=status)

    def mark_callback_enqueued(self, job_id: str, *, due_at: datetime) -> bool:
        self._enter("mark_callback_enqueued")
        with self.lock:
            if self.outbox.get(job_id) != int(due_at.timestamp() * 1000):
                return False
            del self.outbox[job_id]
            return True

    def due_callbacks(self, *, older_than: datetime, limit: int) -> Sequence[DueCallback]:
        self._enter("due_callbacks")
        threshold = int(older_than.timestamp() * 1000)
        with self.lock:
            return [DueCallback(job_id, due) for job_id, due in self.outbox.items() if due < threshold][:limit]

    def move_callback_due(self, job_id: str, *, expected_ms: int, now: datetime) -> Job | None:
        self._enter("move_callback_due")
        with self.lock:
            if self.outbox.get(job_id) != expected_ms:
                return None
            self.outbox[job_id] = int(now.timestamp() * 1000)
            return self.jobs.get(job_id)

    def record_callback_attempt(
        self, job_id: str, *, status: JobStatus, entered_at: datetime, state: CallbackState, status_code: int | None
    ) -> Job | None:
        self._enter("record_callback_attempt")
        with self.lock:
            job = self.jobs.get(job_id)
            if (
                job is None
                or job.callback is None
                or job.status is not status
                or job.transitions.get(status.value) != entered_at
                or job.callback.state is not CallbackState.PENDING
            ):
                return None
            callback = job.callback.__class__(
                url=job.callback.url, state=state, attempts=job.callback.attempts + 1, last_status_code=status_code
            )
            self.jobs[job_id] = job = job.replace(callback=callback)
            return job

    def ping(self) -> None:
        self._enter("ping")


@dataclass
class FakeQueue:
    sent: list[JobMessage] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    visibility: list[tuple[str, int]] = field(default_factory=list)
    batch_visibility: list[tuple[tuple[str, ...], int]] = field(default_factory=list)
    inbox: list[ReceivedMessage] = field(default_factory=list)
    fail_send: bool = False
    send_calls: int = 0  # SendMessageBatch calls send_many would make
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, message: JobMessage) -> None:
        if self.fail_send:
            raise QueueUnavailable("queue down")
        with self.lock:
            self.sent.append(message)

    def send_many(
        self, messages: Sequence[JobMessage], *, may_start: Callable[[], bool] | None = None
    ) -> frozenset[int]:
        if self.fail_send or (may_start is not None and not may_start()):
            return frozenset(range(len(messages)))
        with self.lock:
            self.sent.extend(messages)
            self.send_calls += (len(messages) + QUEUE_BATCH_LIMIT - 1) // QUEUE_BATCH_LIMIT
        return frozenset()

    def receive(self, *, max_messages: int, wait_s: int, visibility_timeout_s: int) -> Sequence[ReceivedMessage]:
        with self.lock:
            taken, self.inbox = self.inbox[:max_messages], self.inbox[max_messages:]
        return taken

    def delete_batch(self, receipt_handles: Sequence[str]) -> None:
        assert len(receipt_handles) <= QUEUE_BATCH_LIMIT, receipt_handles
        with self.lock:
            self.deleted.extend(receipt_handles)

    def change_visibility(self, receipt_handle: str, timeout_s: int) -> None:
        with self.lock:
            self.visibility.append((receipt_handle, timeout_s))

    def change_visibility_batch(self, receipt_handles: Sequence[str], timeout_s: int) -> None:
        assert len(receipt_handles) <= QUEUE_BATCH_LIMIT, receipt_handles
        with self.lock:
            self.batch_visibility.append((tuple(receipt_handles), timeout_s))

    def ping(self) -> None:
        return None


class InMemoryObjects:
    def __init__(self, objects: dict[str, bytes] | None = None) -> None:
        self.objects: dict[str, bytes] = dict(objects or {})
        self.content_types: dict[str, str] = {}
        self.put_failure: Exception | None = None  # raised by every put while set

    def get_bytes(self, uri: str) -> bytes:
        if uri not in self.objects:
            raise ObjectNotFound(uri)
        return self.objects[uri]

    def read_chunks(self, uri: str, *, chunk_bytes: int) -> ObjectChunks:
        data = self.get_bytes(uri)
        chunks = [data[start : start + chunk_bytes] for start in range(0, len(data), chunk_bytes)]
        return ObjectChunks(size=len(data), chunks=iter(chunks))

    def put_bytes(self, uri: str, data: bytes, *, content_type: str) -> None:
        if self.put_failure is not None:
            raise self.put_failure
        self.objects[uri] = data
        self.content_types[uri] = content_type


def received(
    job_id: str | None = "job-1", *, handle: str = "rh-1", receive_count: int = 1, body: str | None = None
) -> ReceivedMessage:
    message = JobMessage(job_id=job_id, trace_id=f"trace-{job_id}") if job_id is not None else None
    return ReceivedMessage(
        message=message,
        receipt_handle=handle,
        message_id=f"mid-{handle}",
        receive_count=receive_count,
        sent_at=T0,
        trace_header=None,
        raw_body=body if body is not None else f'{{"jobId":"{job_id}","traceId":"trace-{job_id}"}}',
    )


@dataclass
class FakeCallbackQueue:
    """Records what was sent and with which delay."""

    sent: list[tuple[CallbackMessage, int]] = field(default_factory=list)
    fail_send: bool = False

    def send(self, message: CallbackMessage, *, delay_s: int = 0) -> None:
        if self.fail_send:
            raise QueueUnavailable("callback queue down")
        self.sent.append((message, delay_s))
