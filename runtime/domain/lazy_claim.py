"""Lazy claims: a job that finishes quickly is never written PROCESSING.

Which messages: a job's first message, from its submit (single or batch), which carries the job's fields
(`ports.CarriedJob`, built by `JobMessage.for_job`; a job due at once only), on its first receive (SQS
ApproximateReceiveCount 1), and the fresh copy a worker's release publishes of such a message it had not claimed.
Any other message is claimed first, as ever: a redelivery, a manual retry's or the republisher's (either may
duplicate a message still queued), a scheduled job's (its message waits long: a cancel meanwhile must keep it from
running), one from before this change, one too large to carry the fields. So duplicate runs stay limited to SQS's
rare duplicate delivery of a submit's message.

How: the worker runs the handler at once. The message's visibility already hides it from other workers; the job's
record is left PENDING. A job whose handler ends within `claim_after_s` (Settings.lazy_claim_after_s) costs one
write: its outcome, conditional on the job being still PENDING with the attempts before this one and due (runAt
passed), which also records what the claim would have (attempts + 1, the PROCESSING transition at the start, the
pending marker gone): the store's `succeed` / `fail` with `started_at` (which checks runAt too, in case a
scheduled job's message ever carries the fields). A job that outlives `claim_after_s`, or whose
handler has progress due for a write first, is claimed then (the ordinary claim: PROCESSING, a lease) and goes on as
any claimed job: lease renewals, cancel checks, progress writes, the outcome conditional on its attempt.

The message is never trusted for state: if the claim or the outcome write is refused, the job was canceled, decided
or taken by someone else meanwhile, and the worker acts as for a refused write of a claimed attempt: the outcome is
not recorded, the handler still running is told to stop (`ctx.cancelled`), and the message follows the job as it is
(deleted when it is terminal). Two workers given the same message both run it; one write wins.

What a client sees differently from a claim-first worker:
- a job that finishes within `claim_after_s` goes from PENDING straight to its outcome (its status event has
  previousStatus PENDING), with `transitions.PROCESSING` (its start) and `attempts` set but no PROCESSING state ever
  visible;
- a cancel of such a job, picked up by a worker but not yet claimed, succeeds as a PENDING cancel (200, CANCELED at
  once); the worker's result is discarded. So is the result of a job canceled while its submit's message still
  waited in the queue: the worker that receives the message runs the handler (nothing tells it of the cancel
  before its write), and a handler running past `claim_after_s` is told to stop when its claim is refused. The
  record never shows that run (CANCELED, no attempt, no result); only what the handler itself wrote elsewhere
  (an output object) can.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from runtime.domain.hold import Hold
from runtime.domain.job import Job
from runtime.domain.ports import Clock, JobStore, ReceivedMessage
from runtime.job_types.registry import CancelSignal


class ClaimState(StrEnum):
    UNCLAIMED = "unclaimed"  # running without a claim
    CLAIMED = "claimed"  # claimed past the threshold (or for a progress write): an ordinary claimed attempt now
    REFUSED = "refused"  # the claim was refused: someone else decided or holds the job
    ABANDONED = "abandoned"  # the worker released the message before the claim: nothing more is written
    SETTLED = "settled"  # the handler ended unclaimed: its outcome goes in the one unclaimed write


def runs_unclaimed(received: ReceivedMessage) -> bool:
    """Whether this message's job may run before its claim: it carries the job's fields and is on its first
    receive (a redelivery is claimed first)."""
    return received.message is not None and received.message.carried is not None and received.receive_count == 1


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
        self.job = job  # as its message carried it: PENDING
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
