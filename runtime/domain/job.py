"""The job record and its guarded state machine."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from runtime.domain.callbacks import Callback


class JobStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # an attempt failed and will be retried
    FAILED_FINAL = "FAILED_FINAL"
    CANCELED = "CANCELED"  # stopped by its submitter (POST .../cancel); never retried automatically


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED_FINAL, JobStatus.CANCELED})
# What a manual retry moves back to PENDING.
RETRYABLE_TERMINAL_STATUSES = frozenset({JobStatus.FAILED_FINAL, JobStatus.CANCELED})

# Every allowed transition. PROCESSING -> PROCESSING is a takeover of a job whose
# worker died (its lease expired); FAILED_FINAL | CANCELED -> PENDING is the manual retry;
# any non-terminal state -> FAILED_FINAL is the dead-letter handler's verdict. PENDING | FAILED -> CANCELED is a
# cancel at once; PROCESSING -> CANCELED is the worker ending its attempt after a cancel was requested (the
# store conditions that write on the job's cancelRequested flag as well).
ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.PROCESSING, JobStatus.FAILED_FINAL, JobStatus.CANCELED}),
    JobStatus.PROCESSING: frozenset(
        {JobStatus.PROCESSING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.FAILED_FINAL, JobStatus.CANCELED}
    ),
    JobStatus.FAILED: frozenset({JobStatus.PROCESSING, JobStatus.FAILED_FINAL, JobStatus.CANCELED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED_FINAL: frozenset({JobStatus.PENDING}),
    JobStatus.CANCELED: frozenset({JobStatus.PENDING}),
}


class InvalidTransition(Exception):
    def __init__(self, current: JobStatus, target: JobStatus) -> None:
        super().__init__(f"job cannot go from {current} to {target}")
        self.current = current
        self.target = target


def prior_statuses(target: JobStatus) -> tuple[JobStatus, ...]:
    """The statuses a job may leave for `target`, in declaration order (the store's conditions are built
    from these, so this table is the state machine the data actually follows)."""
    return tuple(status for status in JobStatus if target in ALLOWED_TRANSITIONS[status])


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


def check_transition(current: JobStatus, target: JobStatus) -> None:
    if not can_transition(current, target):
        raise InvalidTransition(current, target)


@dataclass(frozen=True)
class JobError:
    """Why the last attempt failed. `code` is machine-readable, `message` is one sentence."""

    code: str
    message: str
    permanent: bool = False


@dataclass(frozen=True)
class Progress:
    """What the handler of a running job last reported (runtime/domain/progress.py)."""

    fraction: float  # 0.0-1.0
    message: str | None
    updated_at: datetime  # when the handler reported it


@dataclass(frozen=True)
class ResultRef:
    """Where a result too large for the job record lives: an S3 object under the tenant's prefix
    (runtime/domain/results.py), with the size and sha256 of its bytes (canonical JSON)."""

    uri: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Job:
    job_id: str
    status: JobStatus
    job_type: str
    priority: Priority
    params: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    trace_id: str
    fingerprint: str
    # The tenant that submitted it: every read, retry and list is scoped to it ("" only for records that
    # predate tenants, which no caller can reach).
    tenant: str = ""
    attempts: int = 0
    result: dict[str, Any] | None = None
    # Set instead of `result` when the result was too large for the record (runtime/domain/results.py).
    result_ref: ResultRef | None = None
    error: JobError | None = None
    idempotency_key: str | None = None  # "<scope>#<key>", the idempotency GSI's key
    # When each status was last entered, e.g. {"PENDING": t0, "PROCESSING": t1}.
    transitions: dict[str, datetime] = field(default_factory=dict)
    # Until when the worker that claimed it owns it; a later claim may take it over after that.
    lease_expires_at: datetime | None = None
    # Set while PENDING: since when it waits for a worker (the republisher's index).
    pending_since: datetime | None = None
    # Epoch seconds after which DynamoDB's TTL may delete the record (the retention period).
    expires_at: int | None = None
    # For an idempotency-key head record: the latest generation of that key (see submit).
    key_generation: int = 0
    # `attempts` when the job was last retried by hand: each manual retry gets the full attempt budget again,
    # while `attempts` itself only grows (a stale worker's "attempts = mine" condition never matches again).
    retry_base: int = 0
    # A cancel was asked for while the job was PROCESSING: its worker ends the attempt CANCELED (unless the
    # handler finished first), and a later claim of the job ends it CANCELED without running it.
    cancel_requested: bool = False
    # A random token of the submit request that wrote the record: when the SDK retries a conditional put whose
    # first attempt was stored but not answered (a stalled store), the retry meets the record, and this token tells
    # the request that the record is its own write (a 201 to publish) and not an earlier request's (a replay).
    request_token: str | None = None
    # The handler's last reported progress (null until it reports; kept after the job ends).
    progress: Progress | None = None
    # A scheduled job does not start before this moment (its claim is refused until then); None: at once.
    run_at: datetime | None = None
    # Where the job's terminal event is POSTed, and how that went (None: submitted without a callbackUrl).
    callback: Callback | None = None
    # How often the DLQ handler turned a dead letter of this job back into a fresh message (runtime/domain/redrive.py),
    # and the SQS message id of the dead letter that did it last (its retry after a failed send publishes again).
    redrives: int = 0
    redriven_by: str | None = None

    @property
    def attempts_since_retry(self) -> int:
        return self.attempts - self.retry_base

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def replace(self, **changes: Any) -> Job:
        return dataclasses.replace(self, **changes)
