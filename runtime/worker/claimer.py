"""Claims the attempts a worker runs unclaimed (runtime/domain/lazy_claim.py) once they outlive `after_s`: one
background thread sleeps until the oldest is due, then claims it (the ordinary claim, which sets the lease the
heartbeat then renews). Attempts that end sooner are discarded unclaimed and never cost it a request. A claim
the store did not answer is tried again `after_s` later; the job is PENDING and the message hidden meanwhile."""

from __future__ import annotations

import time
from collections.abc import Callable

from runtime.domain.lazy_claim import LazyClaim
from runtime.observability import logs
from runtime.observability.names import LogEvent
from runtime.worker.due_loop import DueLoop


class LazyClaimer(DueLoop):
    """A ClaimScheduler with its thread (start/stop)."""

    def __init__(self, *, after_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        # The claim is the job's own write, counted as the worker's like the claim-first one.
        super().__init__(thread_name="lazy-claimer", aws_category="worker")
        self._after_s = after_s
        self._monotonic = monotonic
        self._due: dict[LazyClaim, float] = {}

    def add(self, claim: LazyClaim) -> None:
        with self._changed:
            self._due[claim] = self._monotonic() + self._after_s
            self._changed.notify()

    def discard(self, claim: LazyClaim) -> None:
        with self._changed:
            self._due.pop(claim, None)

    def wait_s(self) -> float | None:
        """Seconds until the next claim is due (0: now); None when none is waiting. Call under the lock."""
        if not self._due:
            return None
        return max(0.0, min(self._due.values()) - self._monotonic())

    def _next_due_s(self) -> float | None:
        return self.wait_s()

    def _run_due(self) -> None:
        self.claim_due()

    def claim_due(self) -> int:
        """Claims every attempt due now; returns how many claims were tried."""
        now = self._monotonic()
        with self._changed:
            due = [claim for claim, at in self._due.items() if at <= now]
            for claim in due:
                del self._due[claim]
        for claim in due:
            try:
                attempt = claim.claim()
            except Exception as exc:  # noqa: BLE001 - still unclaimed: tried again later, or settled by its outcome
                logs.log_event(
                    LogEvent.LAZY_CLAIM_FAILED,
                    level="warning",
                    jobId=claim.job.job_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
                self.add(claim)
                continue
            logs.log_event(
                LogEvent.LAZY_CLAIMED,
                jobId=claim.job.job_id,
                attempt=attempt,
                state=claim.state.value,
            )
        return len(due)
