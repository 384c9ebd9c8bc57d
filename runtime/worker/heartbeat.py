"""Visibility heartbeat: every visibility_timeout_s/3, one ChangeMessageVisibilityBatch per 10 in-flight
messages and one lease extension per claimed job, so a job that outlives the visibility timeout is
neither redelivered nor taken over while its worker is alive. Sub-interval jobs never pay for one. Each beat
first calls `on_beat` (the task protection's renewal, which must not block)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from runtime.domain.ports import QUEUE_BATCH_LIMIT, Clock, JobQueue, JobStore
from runtime.observability import aws_calls, logs
from runtime.observability.names import LogEvent


@dataclass
class InFlight:
    receipt_handle: str
    job_id: str | None
    tracked_at: datetime
    attempt: int | None = None  # set once this worker claimed the job
    lease_lost: bool = False


class Heartbeat:
    def __init__(
        self,
        *,
        queue: JobQueue,
        store: JobStore,
        clock: Clock,
        visibility_timeout_s: int,
        interval_s: float,
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        self._queue = queue
        self._store = store
        self._clock = clock
        self._visibility_timeout_s = visibility_timeout_s
        self._interval_s = interval_s
        self._on_beat = on_beat
        self._lock = threading.Lock()
        self._in_flight: dict[str, InFlight] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def track(self, receipt_handle: str, job_id: str | None) -> None:
        with self._lock:
            self._in_flight[receipt_handle] = InFlight(receipt_handle, job_id, self._clock.now())

    def claimed(self, receipt_handle: str, attempt: int) -> None:
        with self._lock:
            entry = self._in_flight.get(receipt_handle)
            if entry is not None:
                entry.attempt = attempt

    def untrack(self, receipt_handle: str) -> None:
        with self._lock:
            self._in_flight.pop(receipt_handle, None)

    def receipt_handles(self) -> list[str]:
        with self._lock:
            return list(self._in_flight)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            if self._on_beat is not None:
                self._on_beat()
            with aws_calls.category("background"):
                self.beat()

    def beat(self) -> None:
        """One round: extends the visibility of every message tracked for at least one interval and the lease
        of every such claimed job. A younger one still has more than visibility_timeout_s - interval left (the
        claim set its lease to a full timeout), and the next beat, within one interval, extends it."""
        due_before = self._clock.now() - timedelta(seconds=self._interval_s)
        with self._lock:
            entries = [
                InFlight(e.receipt_handle, e.job_id, e.tracked_at, e.attempt, e.lease_lost)
                for e in self._in_flight.values()
                if e.tracked_at <= due_before
            ]
        if not entries:
            return
        handles = [e.receipt_handle for e in entries]
        for start in range(0, len(handles), QUEUE_BATCH_LIMIT):
            try:
                self._queue.change_visibility_batch(
                    handles[start : start + QUEUE_BATCH_LIMIT], self._visibility_timeout_s
                )
            except Exception as exc:  # noqa: BLE001 - the next beat tries again; the lease still protects the job
                logs.log_event(
                    LogEvent.HEARTBEAT_VISIBILITY_FAILED, level="warning", error=f"{type(exc).__name__}: {exc}"
                )
        lease_until = self._clock.now() + timedelta(seconds=self._visibility_timeout_s)
        for entry in entries:
            if entry.job_id is None or entry.attempt is None or entry.lease_lost:
                continue
            try:
                extended = self._store.extend_lease(entry.job_id, attempt=entry.attempt, lease_until=lease_until)
            except Exception as exc:  # noqa: BLE001 - retried at the next beat
                logs.log_event(
                    LogEvent.HEARTBEAT_LEASE_FAILED,
                    level="warning",
                    jobId=entry.job_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            if not extended:
                # Someone else decided the job (dead-letter verdict, takeover): the handler's outcome will
                # not be recorded; stop extending a lease that is not ours.
                with self._lock:
                    current = self._in_flight.get(entry.receipt_handle)
                    if current is not None:
                        current.lease_lost = True
                logs.log_event(LogEvent.LEASE_LOST, level="warning", jobId=entry.job_id, attempt=entry.attempt)
