"""The dead-letter verdict: a dead letter is a job message that SQS moved to the DLQ after maxReceiveCount receives.
A receive is no attempt: a worker killed with messages it had received but not claimed (it prefetches up to
concurrency + 9) costs each of them a receive and no attempt. So a dead letter alone does not prove that the job
failed, and the DLQ handler decides by the job record:

- terminal, or unknown: nothing to do;
- PROCESSING under a live lease: its worker decides (the dead letter is retried later);
- attempts left (`attempts_since_retry` below the worker's max_attempts) and fewer than MAX_REDRIVES redrives:
  redriven, i.e. a fresh message goes to the job's own priority queue, the attempts it had unchanged;
- otherwise FAILED_FINAL `dead_lettered`: its attempts are used up, or it was redriven MAX_REDRIVES times already
  (a job that keeps killing its worker, a poison job, must not loop forever).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Final

from runtime.domain.job import Job, JobStatus

# How often one job's dead letters are turned back into fresh messages before the verdict is FAILED_FINAL. Manual
# retries start the count over (the store's requeue clears it), as they do the attempt budget.
MAX_REDRIVES: Final = 3


class Verdict(StrEnum):
    UNCHANGED = "unchanged"  # terminal or unknown
    LEASED = "leased"  # a live worker holds it
    REDRIVE = "redrive"
    RESEND = "resend"  # this same dead letter redrove the job before; back because its send failed
    OUT_OF_ATTEMPTS = "out_of_attempts"
    REDRIVE_LIMIT = "redrive_limit"


def leased(job: Job, now: datetime) -> bool:
    """A worker holds the job under a lease that has not run out (the store's "expired" is lease < now)."""
    return job.status is JobStatus.PROCESSING and job.lease_expires_at is not None and job.lease_expires_at >= now


def verdict(job: Job | None, *, now: datetime, max_attempts: int, dead_letter_id: str) -> Verdict:
    """What the dead letter `dead_letter_id` (its SQS message id) of `job` (as read now) should lead to."""
    if job is None or job.is_terminal:
        return Verdict.UNCHANGED
    if leased(job, now):
        return Verdict.LEASED
    if job.attempts_since_retry >= max_attempts:
        return Verdict.OUT_OF_ATTEMPTS
    if job.redriven_by == dead_letter_id:
        # Counted already, whatever the count is now: the retry of a failed send must not be stopped by it.
        return Verdict.RESEND
    if job.redrives >= MAX_REDRIVES:
        return Verdict.REDRIVE_LIMIT
    return Verdict.REDRIVE
