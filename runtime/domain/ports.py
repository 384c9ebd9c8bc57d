"""What the domain needs from the outside world. Adapters implement these; tests use plain fakes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from runtime.domain.callbacks import CallbackState
from runtime.domain.job import Job, JobError, JobStatus, Priority, Progress, ResultRef


class JobStoreUnavailable(Exception):
    """The job store did not answer (network, throttling past retries, 5xx)."""


class QueueUnavailable(Exception):
    """The queue did not answer."""


class JobRecordRefused(Exception):
    """The job store refused a write as invalid for the record itself (over the item size limit, a value it cannot
    hold), not because of its condition: the same write can never succeed. The text is for the logs only."""


@dataclass(frozen=True)
class CreateOutcome:
    """Result of a conditional create: `created` is False when an item with that id existed."""

    created: bool
    job: Job  # the new job, or the existing one when created is False


@dataclass(frozen=True)
class ClaimOutcome:
    """Result of a claim. `claimed` True: `job` is the job now PROCESSING under this claim.
    False: `job` is the job as it is (terminal, or leased by another worker), or None if no such job."""

    claimed: bool
    job: Job | None


@dataclass(frozen=True)
class ListFilter:
    """Whose jobs a listing reads (the caller's tenant, always) and which of them."""

    tenant: str
    status: JobStatus | None
    job_type: str | None


@dataclass(frozen=True)
class JobPage:
    """One page of a tenant's jobs, newest first. `next_key` is where the next page starts (strings only, as the
    store issued it; None: no more pages)."""

    jobs: Sequence[Job]
    next_key: Mapping[str, str] | None


@dataclass(frozen=True)
class DueCallback:
    """An entry of the callback outbox: a terminal job whose delivery message may not have gone out."""

    job_id: str
    due_ms: int  # epoch ms, exactly as stored (the sweep's conditional move compares it)


class LeaseState(StrEnum):
    """What a lease renewal found: the job is still this worker's (and whether a cancel was requested), or not."""

    HELD = "held"
    CANCEL_REQUESTED = "cancel_requested"  # still held, renewed; its submitter asked for a cancel
    LOST = "lost"  # no longer PROCESSING under this attempt: someone else decided the job


class JobStore(Protocol):
    def create(self, job: Job) -> CreateOutcome:
        """One conditional put (attribute_not_exists(jobId)). Never overwrites."""

    def get(self, job_id: str) -> Job | None:
        """Strongly consistent read."""

    def get_many(self, job_ids: Sequence[str]) -> Mapping[str, Job | None]:
        """Strongly consistent reads of up to 100 jobs in one request (DynamoDB: one BatchGetItem, its unprocessed
        keys asked again a bounded number of times). Each id answered maps to its job, or None when there is no
        such job; an id still unanswered is absent. Raises JobStoreUnavailable."""

    def claim(self, job_id: str, *, now: datetime, lease_until: datetime) -> ClaimOutcome:
        """PENDING | FAILED | (PROCESSING with lease_expires_at < now) -> PROCESSING, attempts + 1,
        lease set, pending marker and the last attempt's progress removed, and only once the job's run_at (if any)
        is not after `now`; one conditional update returning the new item. On a failed condition the current item
        is returned (no separate read when the store can avoid it)."""

    def extend_lease(self, job_id: str, *, attempt: int, lease_until: datetime) -> LeaseState:
        """Heartbeat: only while PROCESSING under this attempt. The same write reads the job's cancel flag back."""

    def release(self, job_id: str, *, attempt: int, now: datetime) -> bool:
        """A worker hands its attempt back unfinished (shutdown, drain, scale-in): only while PROCESSING under
        this attempt, the lease ends at once and `attempts` goes back to what it was before the claim (a release is
        no attempt). False if the condition failed."""

    def set_progress(self, job_id: str, *, attempt: int, progress: Progress, now: datetime) -> bool:
        """Stores the handler's progress, only while PROCESSING under this attempt (False otherwise)."""

    # `callback_due` on a write that makes the job terminal: the job has a callback, and the same write puts it in
    # the callback outbox (runtime/callbacks/outbox.py), so a process dying before the enqueue loses no callback.

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
        """PROCESSING (this attempt) -> SUCCEEDED with `result` inline, or with `result_ref` (result None) when it
        was stored apart. False if the condition failed (someone took over); JobRecordRefused when the record
        cannot hold it (the job is left as it was). `progress` (the handler's last report), when given, is stored
        in the same write; so for fail and finish_canceled.
        `started_at` (so for fail): the attempt ran unclaimed since then (runtime/domain/lazy_claim.py); the write
        takes the job from PENDING with `attempt - 1` attempts, due, instead, and records the claim's part too
        (attempts = `attempt`, PROCESSING entered at `started_at`, pending marker removed)."""

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
        """PROCESSING (this attempt) -> FAILED, or FAILED_FINAL when `final` (only then does `callback_due` count)."""

    def fail_final(self, job_id: str, *, error: JobError, now: datetime, callback_due: bool = False) -> Job | None:
        """Dead-letter verdict: PENDING, FAILED, or PROCESSING whose lease has expired -> FAILED_FINAL.
        Returns the job after the change, or None when nothing changed: the job is terminal, does not
        exist, or is PROCESSING under a live lease (its worker is alive and decides the outcome)."""

    def requeue(self, job_id: str, *, now: datetime, pending_since: datetime | None = None) -> Job | None:
        """Manual retry of FAILED_FINAL | CANCELED -> PENDING (pending marker set to `pending_since`, default
        `now`; retry_base = attempts so that the job gets its full attempt budget again, cancel flag and redrives
        cleared).
        None if neither."""

    def cancel(self, job_id: str, *, now: datetime, callback_due: bool = False) -> Job | None:
        """PENDING | FAILED -> CANCELED at once (pending marker removed). The job after it, None if neither."""

    def request_cancel(self, job_id: str, *, now: datetime) -> Job | None:
        """Sets cancelRequested on a PROCESSING job (no status change). The job after it, None if not PROCESSING."""

    def finish_canceled(
        self,
        job_id: str,
        *,
        attempt: int,
        now: datetime,
        progress: Progress | None = None,
        callback_due: bool = False,
    ) -> bool:
        """PROCESSING (this attempt, cancel requested) -> CANCELED. False if the condition failed."""

    def mark_republished(self, job_id: str, *, expected_pending_since: datetime, pending_since: datetime) -> bool:
        """Moves the pending marker of a still-PENDING job from `expected_pending_since` to `pending_since` (the
        sweep's clock, or a scheduled job's run_at), so that one republisher wins."""

    def mark_redriven(
        self, job_id: str, *, seen: Job, dead_letter_id: str, limit: int, now: datetime, pending_since: datetime | None
    ) -> bool:
        """The DLQ handler's redrive (runtime/domain/redrive.py), written before its message is sent: `redrives` + 1
        and `redrivenBy` = `dead_letter_id` (its SQS message id), and for a PENDING job the pending marker moved to
        `pending_since`. Only while the job has the status, attempts and redrives it had in `seen`, no live lease,
        and redrives below `limit`; False (nothing written) otherwise."""

    def stuck_pending(self, *, older_than: datetime, limit: int) -> Sequence[Job]:
        """PENDING jobs whose pending marker is older than `older_than` (the sparse pending index)."""

    def list_jobs(self, scope: ListFilter, *, limit: int, start_key: Mapping[str, str] | None) -> JobPage:
        """At most `limit` jobs of `scope.tenant`, newest first, with the given status and/or type, starting after
        `start_key` (a `next_key` of an earlier page with the same tenant and filters). An index read: eventually
        consistent."""

    def advance_key_generation(self, head_job_id: str, *, expected: int, new: int, keep_until: int) -> bool:
        """On the head record of an idempotency key: key_generation expected -> new, and keep the head
        at least until `keep_until` (epoch s). Conditional; False if another request advanced it."""

    def find_by_idempotency_key(self, idempotency_key: str) -> Sequence[str]:
        """Job ids recorded under "<scope>#<key>" (the idempotency GSI; eventually consistent)."""

    def mark_callback_enqueued(self, job_id: str, *, due_at: datetime) -> bool:
        """The job leaves the callback outbox (only if its entry is still due at `due_at`)."""

    def due_callbacks(self, *, older_than: datetime, limit: int) -> Sequence[DueCallback]:
        """Outbox entries due before `older_than` (an index read: eventually consistent)."""

    def move_callback_due(self, job_id: str, *, expected_ms: int, now: datetime) -> Job | None:
        """Outbox entry due at `expected_ms` -> due at `now` (one sweeper wins); the job, None if it moved or left."""

    def record_callback_attempt(
        self, job_id: str, *, status: JobStatus, entered_at: datetime, state: CallbackState, status_code: int | None
    ) -> Job | None:
        """One delivery attempt of the event of `status` entered at `entered_at`; None if the job moved on or its
        callback is no longer pending."""

    def ping(self) -> None:
        """Raises JobStoreUnavailable when the store does not answer."""


@dataclass(frozen=True)
class CallbackMessage:
    """A delivery to make (the callback queue's message). `not_before` (epoch s) is set on a retry whose delay is
    longer than one SQS delay allows: the message hops until then. `first_attempt_at` (epoch s) starts the retry
    window; None before the first attempt."""

    job_id: str
    event_id: str
    trace_id: str = ""
    not_before: int | None = None
    first_attempt_at: int | None = None


# Called right after a terminal write that put a job with a callback in the callback outbox: the job (any version
# of it), the status it entered and when (runtime/callbacks/outbox.py CallbackOutbox.enqueue does the work).
OnCallbackDue = Callable[[Job, JobStatus, datetime], object]


class CallbackQueue(Protocol):
    def send(self, message: CallbackMessage, *, delay_s: int = 0) -> None:
        """delay_s 0-900 (SQS's per-message delay). Raises QueueUnavailable."""


@dataclass(frozen=True)
class JobMessage:
    job_id: str
    trace_id: str
    # Which queue the message goes to (or came from); not part of the message body.
    priority: Priority = Priority.NORMAL
    # How long the queue hides a sent message (a scheduled job's remaining wait); not part of the body.
    delay_s: int = 0
    # The X-Ray header to send it with, when it must keep one it arrived with (a worker's release publishes a
    # fresh copy); None: the sender's current trace, if any. Not part of the body either.
    trace_header: str | None = None
    # The job's submit sent it (`for_job`'s `from_submit`): on its first receive the worker may run the job before
    # claiming it, once a consistent read shows it PENDING (runtime/domain/lazy_claim.py). False: claimed first.
    from_submit: bool = False

    @classmethod
    def for_job(cls, job: Job, *, delay_s: int = 0, from_submit: bool = False) -> JobMessage:
        """The message of `job`: every publish that has the job in hand builds it here. `from_submit`: the job's
        first message, from its submit, marked so (for a job PENDING and due at once only). Other publishes (a
        manual retry, the republisher, a put-back) may leave a message of the job still queued, and a copy run
        unclaimed as well would run the job twice: they are unmarked, and their job is claimed before it runs."""
        return cls(
            job_id=job.job_id,
            trace_id=job.trace_id,
            priority=job.priority,
            delay_s=delay_s,
            from_submit=from_submit and job.status is JobStatus.PENDING and job.run_at is None,
        )


@dataclass(frozen=True)
class ReceivedMessage:
    message: JobMessage | None  # None when the body is not a job message (poison)
    receipt_handle: str
    message_id: str
    receive_count: int
    sent_at: datetime
    trace_header: str | None  # X-Ray AWSTraceHeader, when present
    raw_body: str


# The most messages one queue call takes or returns: SQS's limit for ReceiveMessage and every batch call.
# Callers fill batches up to it; the SQS adapter refuses (send) or splits (delete, visibility) larger ones.
QUEUE_BATCH_LIMIT = 10


class JobQueue(Protocol):
    def send(self, message: JobMessage) -> None:
        """Raises QueueUnavailable."""

    def send_many(
        self, messages: Sequence[JobMessage], *, may_start: Callable[[], bool] | None = None
    ) -> frozenset[int]:
        """Sends in calls of QUEUE_BATCH_LIMIT; returns the indexes of the messages that did not go out (a call
        that fails loses its whole chunk, and a call `may_start` refuses is not made). Never raises
        QueueUnavailable: the caller decides what unsent means."""

    def receive(self, *, max_messages: int, wait_s: int, visibility_timeout_s: int) -> Sequence[ReceivedMessage]: ...

    def delete_batch(self, receipt_handles: Sequence[str]) -> None: ...

    def change_visibility(self, receipt_handle: str, timeout_s: int) -> None: ...

    def change_visibility_batch(self, receipt_handles: Sequence[str], timeout_s: int) -> None: ...

    def ping(self) -> None:
        """Raises QueueUnavailable when the queue does not answer."""


@dataclass(frozen=True)
class ObjectChunks:
    """An object being read: its size, known before its bytes, and its bytes in order."""

    size: int
    chunks: Iterator[bytes]


class ObjectStore(Protocol):
    """S3-like storage for job types. `uri` is s3://bucket/key."""

    def get_bytes(self, uri: str) -> bytes:
        """Raises ObjectNotFound for a missing bucket or key."""

    def read_chunks(self, uri: str, *, chunk_bytes: int) -> ObjectChunks:
        """The object as chunks of at most `chunk_bytes`, for a reader that reports how far it got. Raises
        ObjectNotFound at the call, before any chunk."""

    def put_bytes(self, uri: str, data: bytes, *, content_type: str) -> None:
        """Raises ObjectNotFound for a missing bucket, ObjectStoreUnavailable when the store does not answer, and
        ObjectWriteRefused when it refuses the write for good."""


class ResultLinks(Protocol):
    """Short-lived download links for results stored apart (ResultRef)."""

    def url_for(self, ref: ResultRef) -> str:
        """A URL that downloads the referenced object for a limited time, with no further credentials."""


class ObjectNotFound(Exception):
    def __init__(self, uri: str) -> None:
        super().__init__(f"no such object: {uri}")
        self.uri = uri


class ObjectStoreUnavailable(Exception):
    """The object store did not answer (network, throttling past retries, 5xx): worth trying again later."""


class ObjectWriteRefused(Exception):
    """The object store refused a write for good (access denied, a bad request): trying again cannot help."""

    def __init__(self, uri: str, code: str) -> None:
        super().__init__(f"write of {uri} refused: {code}")
        self.uri = uri
        self.code = code


class Clock(Protocol):
    def now(self) -> datetime: ...


class UtcClock:
    """The real clock: aware UTC datetimes."""

    def now(self) -> datetime:
        return datetime.now(UTC)
