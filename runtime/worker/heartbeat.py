"""Visibility heartbeat: every visibility_timeout_s/3, one ChangeMessageVisibilityBatch per 10 in-flight
messages, so a job that outlives the visibility timeout is not redelivered while its worker is alive; each such
beat first calls `on_beat` (the task protection's renewal, which must not block). Every `lease_interval_s` (a
whole fraction of that interval) one lease extension per claimed job at least that old, so the job is not taken
over either; the same write reads the job's cancel flag back, and a requested cancel sets the job's flag here
(the handler sees it as `ctx.cancelled`), without a read of its own. Jobs shorter than one lease interval never
pay for either."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from runtime.domain.ports import QUEUE_BATCH_LIMIT, Clock, JobQueue, JobStore, LeaseState
from runtime.job_types.registry import CancelSignal
from runtime.observability import aws_calls, logs
from runtime.observability.names import LogEvent


@dataclass
class InFlight:
    receipt_handle: str
    job_id: str | None
    tracked_at: datetime
    attempt: int | None = None  # set once this worker claimed the job
    lease_lost: bool = False
    # Set once a lease renewal found the job's cancel requested; the job's handler reads it (ctx.cancelled).
    cancel: CancelSignal = field(default_factory=CancelSignal)


class Heartbeat:
    def __init__(
        self,
        *,
        queue: JobQueue,
        store: JobStore,
        clock: Clock,
        visibility_timeout_s: int,
        interval_s: float,
        lease_interval_s: float | None = None,
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        self._queue = queue
        self._store = store
        self._clock = clock
        self._visibility_timeout_s = visibility_timeout_s
        self._interval_s = interval_s
        # Whole beats per visibility interval, so that visibility changes keep their own cadence.
        self._beats_per_interval = max(1, math.ceil(interval_s / lease_interval_s - 1e-9)) if lease_interval_s else 1
        self._lease_interval_s = interval_s / self._beats_per_interval
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

    def cancel_flag(self, receipt_handle: str) -> CancelSignal | None:
        """The event a requested cancel of this message's job sets; None for an untracked message."""
        with self._lock:
            entry = self._in_flight.get(receipt_handle)
            return entry.cancel if entry is not None else None

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
        ticks = 0
        while not self._stop.wait(self._lease_interval_s):
            ticks += 1
            with aws_calls.category("background"):
                if ticks % self._beats_per_interval:
                    self.renew_leases()
                    continue
                if self._on_beat is not None:
                    self._on_beat()
                self.beat()

    def _due(self, age_s: float) -> list[InFlight]:
        due_before = self._clock.now() - timedelta(seconds=age_s)
        with self._lock:
            # Copies (sharing each cancel event): the job threads may untrack entries meanwhile.
            return [dataclasses.replace(e) for e in self._in_flight.values() if e.tracked_at <= due_before]

    def beat(self) -> None:
        """One round: extends the visibility of every message tracked for at least one interval, then renews
        the leases (renew_leases). A younger message still has more than visibility_timeout_s - interval left,
        and the next beat, within one interval, extends it."""
        entries = self._due(self._interval_s)
        if entries:
            self._extend_visibility([e.receipt_handle for e in entries])
        self.renew_leases()

    def _extend_visibility(self, handles: list[str]) -> None:
        for start in range(0, len(handles), QUEUE_BATCH_LIMIT):
            try:
                self._queue.change_visibility_batch(
                    handles[start : start + QUEUE_BATCH_LIMIT], self._visibility_timeout_s
                )
            except Exception as exc:  # noqa: BLE001 - the next beat tries again; the lease still protects the job
                logs.log_event(
                    LogEvent.HEARTBEAT_VISIBILITY_FAILED, level="warning", error=f"{type(exc).__name__}: {exc}"
                )

    def renew_leases(self) -> None:
        """Extends the lease of every claimed job tracked for at least one lease interval (a younger claim has
        a lease of nearly a full visibility timeout left) and notes the cancel requests the renewals read."""
        entries = [
            e
            for e in self._due(self._lease_interval_s)
            if e.job_id is not None and e.attempt is not None and not e.lease_lost
        ]
        if not entries:
            return
        lease_until = self._clock.now() + timedelta(seconds=self._visibility_timeout_s)
        for entry in entries:
            assert entry.job_id is not None and entry.attempt is not None
            try:
                state = self._store.extend_lease(entry.job_id, attempt=entry.attempt, lease_until=lease_until)
            except Exception as exc:  # noqa: BLE001 - retried at the next beat
                logs.log_event(
                    LogEvent.HEARTBEAT_LEASE_FAILED,
                    level="warning",
                    jobId=entry.job_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            if state is LeaseState.CANCEL_REQUESTED and not entry.cancel.is_set():
                entry.cancel.set()
                logs.log_event(LogEvent.CANCEL_NOTICED, jobId=entry.job_id, attempt=entry.attempt)
            if state is LeaseState.LOST:
                # Someone else decided the job (dead-letter verdict, takeover): the handler's outcome will
                # not be recorded; stop extending a lease that is not ours.
                with self._lock:
                    current = self._in_flight.get(entry.receipt_handle)
                    if current is not None:
                        current.lease_lost = True
                logs.log_event(LogEvent.LEASE_LOST, level="warning", jobId=entry.job_id, attempt=entry.attempt)
