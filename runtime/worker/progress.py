"""Stores the progress that running handlers report: one background thread writes, per job, at most one value
every `interval_s` (the latest; runtime/domain/progress.py's ProgressThrottle decides), each write conditional on
the job still being PROCESSING under the reporting attempt (an attempt still running unclaimed is claimed first:
runtime/domain/lazy_claim.py). The handler's own call never waits for a write, and a
failed write is logged and never fails the job; the last value is stored with the attempt's outcome instead."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from runtime.domain.hold import Hold
from runtime.domain.job import Progress
from runtime.domain.ports import Clock, JobStore
from runtime.domain.progress import ProgressReport, ProgressThrottle
from runtime.observability import logs
from runtime.observability.names import LogEvent
from runtime.worker.due_loop import DueLoop


@dataclass(frozen=True)
class _Attempt:
    job_id: str
    attempt: int
    hold: Hold
    claim: Callable[[], int | None] | None = None  # set while the attempt may still run unclaimed


class ProgressWriter(DueLoop):
    """A ProgressSink for the processor (open/close per attempt) with a writer thread (start/stop)."""

    def __init__(
        self,
        *,
        store: JobStore,
        clock: Clock,
        interval_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(thread_name="progress", aws_category="background")
        self._store = store
        self._clock = clock
        self._monotonic = monotonic
        self._throttle: ProgressThrottle[ProgressReport] = ProgressThrottle(interval_s)
        self._attempts: dict[ProgressReport, _Attempt] = {}

    def open(
        self, job_id: str, attempt: int, hold: Hold | None = None, claim: Callable[[], int | None] | None = None
    ) -> ProgressReport:
        report = ProgressReport(self._clock, on_report=self._reported)
        with self._changed:
            self._attempts[report] = _Attempt(job_id, attempt, hold if hold is not None else Hold(), claim)
        return report

    def close(self, report: ProgressReport) -> Progress | None:
        """The attempt's handler ended: no more writes for it; its last value is the caller's to store."""
        with self._changed:
            self._attempts.pop(report, None)
            self._throttle.forget(report)
        return report.latest

    def _reported(self, report: ProgressReport, progress: Progress) -> None:
        # On the handler's thread: only bookkeeping under a lock, and a wake-up when the writer may sleep too long.
        with self._changed:
            if report in self._attempts and self._throttle.reported(report, progress, self._monotonic()):
                self._changed.notify()

    def _next_due_s(self) -> float | None:
        return self._throttle.wait_s(self._monotonic())

    def _run_due(self) -> None:
        self.write_due()

    def write_due(self) -> int:
        """Writes every value that is due now; returns how many writes were made (accepted or not)."""
        with self._changed:
            due = [
                (report, self._attempts[report], progress)
                for report, progress in self._throttle.due(self._monotonic())
                if report in self._attempts
            ]
        for report, owner, progress in due:
            try:
                # An attempt still unclaimed is claimed first (outside the hold: the claim takes it itself).
                attempt = owner.claim() if owner.claim is not None else owner.attempt
                with owner.hold.writing() as mine:
                    # A released job may already be another worker's under the same attempt number: write nothing.
                    stored = (
                        mine
                        and attempt is not None
                        and self._store.set_progress(
                            owner.job_id, attempt=attempt, progress=progress, now=self._clock.now()
                        )
                    )
            except Exception as exc:  # noqa: BLE001 - progress is informative: the job goes on, the outcome has it
                logs.log_event(
                    LogEvent.PROGRESS_WRITE_FAILED,
                    level="warning",
                    jobId=owner.job_id,
                    attempt=owner.attempt,
                    error=f"{type(exc).__name__}: {exc}",
                )
                with self._changed:
                    self._throttle.failed(report)
                continue
            if not stored:
                # No longer PROCESSING under this attempt (someone else decided the job): write no more for it.
                with self._changed:
                    self._attempts.pop(report, None)
                    self._throttle.forget(report)
                logs.log_event(LogEvent.PROGRESS_WRITE_REFUSED, jobId=owner.job_id, attempt=owner.attempt)
        return len(due)
