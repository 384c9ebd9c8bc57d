"""Lazy claims: a job that finishes quickly is never written PROCESSING.

Which messages: a job's first message, from its submit (single or batch; a job due at once only), marked so by
`JobMessage.for_job(from_submit=True)`, on its first receive (SQS ApproximateReceiveCount 1), and the fresh copy a
worker's release publishes of it. Any other message is claimed first, as ever: a redelivery, a manual retry's or
the republisher's (either may duplicate a message still queued), a scheduled job's, one from before this change.
So duplicate runs stay limited to SQS's rare duplicate delivery of a submit's message.

The read: after each receive the worker reads the jobs of those messages with one consistent BatchGetItem
(`read_jobs`; a receive brings at most 10). The table is the one source of the job's fields and state:
- a job the read shows PENDING and due (runAt passed), its handler starting within MAX_READ_AGE_S of the read,
  runs unclaimed;
- a job it shows ended (CANCELED, SUCCEEDED, FAILED_FINAL) or missing: its message is deleted unrun, as when a
  claim finds the job so;
- anything else (PROCESSING, FAILED, a cancel requested, not yet due, a read older than MAX_READ_AGE_S by the time a
  job thread takes the message, a job the read left unanswered or a read that failed): claimed first. A failed read
  never lets a job run blind.

How: the worker runs the handler at once. The message's visibility already hides it from other workers; the job's
record is left PENDING. A job whose handler ends within `claim_after_s` (Settings.lazy_claim_after_s) costs one
write: its outcome, conditional on the job being still PENDING with the attempts before this one and due, which
also records what the claim would have (attempts + 1, the PROCESSING transition at the start, the pending marker
gone): the store's `succeed` / `fail` with `started_at`. A job that outlives `claim_after_s`, or whose handler has
progress due for a write first, is claimed then (the ordinary claim: PROCESSING, a lease) and goes on as any
claimed job: lease renewals, cancel checks, progress writes, the outcome conditional on its attempt.

If the claim or the outcome write is refused, the job was canceled, decided or taken by someone else since the
read, and the worker acts as for a refused write of a claimed attempt: the outcome is not recorded, the handler
still running is told to stop (`ctx.cancelled`), and the message follows the job as it is (deleted when it is
terminal). Two workers given the same message both run it; one write wins.

What a client sees differently from a claim-first worker:
- a job that finishes within `claim_after_s` goes from PENDING straight to its outcome (its status event has
  previousStatus PENDING), with `transitions.PROCESSING` (its start) and `attempts` set but no PROCESSING state ever
  visible;
- a cancel of a PENDING job is answered CANCELED at once (the contract's "never runs"), and a job canceled while
  its message waits in the queue is never run: the read shows it CANCELED. What remains is a window of its own: a
  cancel that lands after the read and before the attempt's outcome write (or its claim past `claim_after_s`)
  finds the job still PENDING, so it too is answered CANCELED at once, while the handler may already be running:
  the run is discarded (the outcome write or the claim is refused, the record stays CANCELED with no attempt and no
  result, a handler past `claim_after_s` is told to stop), but what the handler did outside the record (an output
  object, an email) is done. The window is the read's age when the handler starts (milliseconds when the worker
  has a free job thread; at most MAX_READ_AGE_S) plus the handler's own time (at most `claim_after_s`). A
  claim-first worker had no such window: its claim was the read, and a cancel after it found the job PROCESSING
  (202, a cancel request the handler may heed), never a PENDING cancel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from runtime.domain.hold import Hold
from runtime.domain.job import Job, JobStatus
from runtime.domain.ports import Clock, JobStore, ReceivedMessage
from runtime.job_types.registry import CancelSignal


class ClaimState(StrEnum):
    UNCLAIMED = "unclaimed"  # running without a claim
    CLAIMED = "claimed"  # claimed past the threshold (or for a progress write): an ordinary claimed attempt now
    REFUSED = "refused"  # the claim was refused: someone else decided or holds the job
    ABANDONED = "abandoned"  # the worker released the message before the claim: nothing more is written
    SETTLED = "settled"  # the handler ended unclaimed: its outcome goes in the one unclaimed write


# A job runs unclaimed only if its handler starts within this long of the read that showed it PENDING (messages of
# one receive wait for a free job thread): an older read is not trusted, the job is claimed first instead.
MAX_READ_AGE_S = 0.5


def runs_unclaimed(received: ReceivedMessage) -> bool:
    """Whether this message's job may run before its claim (once a read shows it PENDING): its submit's message,
    on its first receive (a redelivery is claimed first)."""
    return received.message is not None and received.message.from_submit and received.receive_count == 1


@dataclass(frozen=True)
class JobRead:
    """What the worker's consistent read right after the receive found of a message's job (None: no such job), and
    when (`time.monotonic()`)."""

    job: Job | None
    read_at: float

    def runnable(self, *, now: datetime, monotonic: float) -> bool:
        """Whether the job may run unclaimed now: PENDING, no cancel requested, due, and the read recent."""
        job = self.job
        return (
            job is not None
            and job.status is JobStatus.PENDING
            and not job.cancel_requested
            and (job.run_at is None or job.run_at <= now)
            and monotonic - self.read_at <= MAX_READ_AGE_S
        )

    @property
    def settled(self) -> bool:
        """The job has ended (or does not exist): its message is deleted unrun, whatever the read's age (an ended
        job never runs again under this message)."""
        return self.job is None or self.job.is_terminal


def read_jobs(store: JobStore, messages: Sequence[ReceivedMessage], *, monotonic: float) -> dict[str, JobRead]:
    """One consistent read of the jobs of those `messages` that may run unclaimed (`runs_unclaimed`), by receipt
    handle; a message whose job the store left unanswered has none (it is claimed first). Raises what the store
    raises (JobStoreUnavailable): the caller claims them all first then."""
    eligible = [message for message in messages if runs_unclaimed(message)]
    if not eligible:
        return {}
    found = store.get_many([message.message.job_id for message in eligible if message.message is not None])
    return {
        message.receipt_handle: JobRead(found[message.message.job_id], monotonic)
        for message in eligible
        if message.message is not None and message.message.job_id in found
    }


class LazyClaim:
    """One attempt run unclaimed: `claim()` (the claimer past the threshold, or the progress writer) and `settle()`
    (the job thread once the handler ended) are serialised, so the attempt is either claimed or settled, never both.
    The claim takes the worker's hold (runtime/domain/hold.py): after a release nothing is written."""

    def __init__(
        self,
        *,
        job: Job,
        store: JobStore,
        clock: Clock,
        hold: Hold,
        lease_s: int,
        cancel_flag: CancelSignal,
        on_claimed: Callable[[Job], None] | None = None,
    ) -> None:
        self.job = job  # as the read found it: PENDING
        self.attempt = job.attempts + 1
        self.started_at = clock.now()
        self._store = store
        self._clock = clock
        self._hold = hold
        self._lease_s = lease_s
        self._cancel_flag = cancel_flag
        self._on_claimed = on_claimed
        self._lock = threading.Lock()
        self._state = ClaimState.UNCLAIMED
        self._current: Job | None = None

    @property
    def state(self) -> ClaimState:
        with self._lock:
            return self._state

    @property
    def current(self) -> Job | None:
        """The job as the claim left it (CLAIMED) or found it (REFUSED; None: no such job)."""
        with self._lock:
            return self._current

    def claim(self) -> int | None:
        """Claims the job now unless that was decided already; the attempt number when the job is this attempt's
        (claimed now or before), None when it is not (refused, released, or settled unclaimed). JobStoreUnavailable
        leaves it unclaimed (the caller tries again later)."""
        with self._lock:
            if self._state is not ClaimState.UNCLAIMED:
                return self._current.attempts if self._state is ClaimState.CLAIMED and self._current else None
            with self._hold.writing() as mine:
                if not mine:
                    self._state = ClaimState.ABANDONED
                    return None
                now = self._clock.now()
                outcome = self._store.claim(
                    self.job.job_id, now=now, lease_until=now + timedelta(seconds=self._lease_s)
                )
                self._current = outcome.job
                if outcome.claimed and outcome.job is not None:
                    self._state = ClaimState.CLAIMED
                    self._hold.claimed(outcome.job.attempts)
                else:
                    self._state = ClaimState.REFUSED
            claimed = self._current if self._state is ClaimState.CLAIMED else None
        if claimed is None:
            # Canceled, decided or held by someone else: whatever the handler makes of it is not recorded.
            self._cancel_flag.set()
            return None
        if claimed.cancel_requested:
            self._cancel_flag.set()
        if self._on_claimed is not None:
            self._on_claimed(claimed)
        return claimed.attempts

    def settle(self) -> ClaimState:
        """The handler ended: no claim from here on. The state the attempt ends in (SETTLED when never claimed)."""
        with self._lock:
            if self._state is ClaimState.UNCLAIMED:
                self._state = ClaimState.SETTLED
            return self._state


class ClaimScheduler(Protocol):
    """Claims the attempts handed to it once they have run `claim_after_s` (runtime/worker/claimer.py)."""

    def add(self, claim: LazyClaim) -> None: ...

    def discard(self, claim: LazyClaim) -> None: ...
