"""No job lost: a background thread that publishes again every PENDING job that has waited longer than
republish_after_s (its message never left, or was lost). One sweep runs every republish_interval_s
(jittered), so a job is republished within republish_after_s + republish_interval_s.

Scheduled jobs (runtime/domain/schedule.py) wait in the same index: one held back at submit is released here once
its runAt is within the delay window, its message delayed by the time left; one whose message is out counts as
waiting from its runAt, so a lost message is published again within the same bound after runAt.

Not while a backlog waits: a job that waited republish_after_s while the job queues still hold visible messages is
far more likely behind them than lost, and a second message for it would only lengthen the backlog (on an
overloaded system every job in it would get one). So while the queues hold visible messages only jobs waiting
longer than republish_backlog_after_s are published again; once the queues drain the usual bound applies. The
depth check (one GetQueueAttributes per priority queue) runs only when a sweep found a candidate. Scheduled jobs
not yet due are never held back by it: their release into the queue is what makes them run on time.

No callback lost: the same sweep sends the callback deliveries of terminal jobs left in the callback outbox for
longer than republish_after_s (their terminal writer died before enqueueing them; runtime/callbacks/outbox.py)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import timedelta

from runtime.callbacks.outbox import CallbackOutbox
from runtime.domain.ports import Clock, JobMessage, JobQueue, JobStore
from runtime.domain.schedule import DelayWindow
from runtime.domain.stats import QueueDepthReader
from runtime.observability import aws_calls, logs
from runtime.observability.names import LogEvent

SWEEP_LIMIT = 100


class Republisher:
    def __init__(
        self,
        *,
        store: JobStore,
        queue: JobQueue,
        clock: Clock,
        republish_after_s: float,
        interval_s: float,
        delay_window: DelayWindow | None = None,
        rand: Callable[[], float] = random.random,
        callbacks: CallbackOutbox | None = None,
        depths: QueueDepthReader | None = None,
        backlog_after_s: float | None = None,
    ) -> None:
        self._callbacks = callbacks
        self._depths = depths
        self._backlog_after = timedelta(seconds=max(backlog_after_s or 0.0, republish_after_s))
        self._store = store
        self._queue = queue
        self._clock = clock
        self._after = timedelta(seconds=republish_after_s)
        self._interval_s = interval_s
        self._window = delay_window or DelayWindow()
        self._rand = rand
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="republisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _next_wait_s(self) -> float:
        # Jitter (0.8x-1.0x) keeps the workers of a fleet from sweeping in lockstep, and never exceeds the
        # interval, so the documented bound holds.
        return self._interval_s * (0.8 + 0.2 * self._rand())

    def _run(self) -> None:
        while not self._stop.wait(self._next_wait_s()):
            with aws_calls.category("background"):
                try:
                    self.sweep()
                    self.sweep_callbacks()
                except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                    logs.log_event(
                        LogEvent.REPUBLISH_SWEEP_FAILED, level="warning", error=f"{type(exc).__name__}: {exc}"
                    )

    def sweep(self) -> int:
        """One pass; returns how many jobs were published again."""
        now = self._clock.now()
        published = 0
        stuck = self._store.stuck_pending(older_than=now - self._after, limit=SWEEP_LIMIT)
        if stuck and self._backlog_waits():
            stuck = [
                job
                for job in stuck
                if (job.run_at is not None and job.run_at > now)
                or (job.pending_since is not None and job.pending_since < now - self._backlog_after)
            ]
        for job in stuck:
            if self._stop.is_set():
                break
            if job.pending_since is None:
                continue
            run_at = job.run_at if job.run_at is not None and job.run_at > now else None
            delay_s = self._window.message_delay_s(run_at, now)
            # The conditional marker move makes one republisher of the fleet win per job and round. A job still
            # beyond the window (its marker moved early, e.g. by hand) only gets its marker set to its release.
            marker = self._window.pending_marker(run_at, now)
            if not self._store.mark_republished(
                job.job_id, expected_pending_since=job.pending_since, pending_since=marker
            ):
                continue
            if delay_s is None:
                continue
            try:
                self._queue.send(JobMessage.for_job(job, delay_s=delay_s))
            except Exception as exc:  # noqa: BLE001 - the marker moved: the job is tried again after republish_after_s
                logs.log_event(
                    LogEvent.REPUBLISH_FAILED, level="warning", jobId=job.job_id, error=f"{type(exc).__name__}: {exc}"
                )
                continue
            published += 1
            logs.log_event(LogEvent.JOB_REPUBLISHED, jobId=job.job_id, traceId=job.trace_id, delayS=delay_s or None)
        return published

    def _backlog_waits(self) -> bool:
        if self._depths is None:
            return False
        return any(depth.visible > 0 for depth in self._depths.depths())

    def sweep_callbacks(self) -> int:
        """One pass over the callback outbox; returns how many deliveries were sent."""
        if self._callbacks is None:
            return 0
        return self._callbacks.sweep(older_than=self._clock.now() - self._after, limit=SWEEP_LIMIT)
