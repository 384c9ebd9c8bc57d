"""A running job's progress: what a handler reports (`ctx.report_progress(fraction, message)`), and the throttle
that decides when the worker writes it to the job record.

The handler's call only validates and keeps the latest value in memory; a background writer stores it, at most
once per job every `progress_interval_s` (PROGRESS_INTERVAL_S by default: the contract's bound), always the latest
value, and the worker stores the last one with the attempt's outcome. So a handler may report as often as it likes
without slowing down or multiplying writes."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Generic, Protocol, TypeVar

from runtime.domain.hold import Hold
from runtime.domain.job import Progress
from runtime.domain.ports import Clock, UtcClock

# At most one progress write per job this often (seconds): the contract's bound and Settings' default.
PROGRESS_INTERVAL_S: Final = 2.0
# A progress message is a short status line stored in the job record, not a log.
MAX_PROGRESS_MESSAGE_CHARS: Final = 200


def checked_progress(fraction: object, message: object, at: datetime) -> Progress:
    """The report as stored; ValueError naming the bad value (a handler bug, so it fails the attempt like any
    other handler error). A message longer than MAX_PROGRESS_MESSAGE_CHARS is cut, not refused."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise ValueError(f"progress fraction must be a number from 0.0 to 1.0, got {fraction!r}")
    if not math.isfinite(fraction) or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"progress fraction must be from 0.0 to 1.0, got {fraction!r}")
    if message is not None and not isinstance(message, str):
        raise ValueError(f"progress message must be a string or None, got {type(message).__name__}")
    if message is not None and len(message) > MAX_PROGRESS_MESSAGE_CHARS:
        message = message[: MAX_PROGRESS_MESSAGE_CHARS - 3] + "..."
    return Progress(fraction=float(fraction), message=message or None, updated_at=at)


class ProgressReport:
    """One attempt's progress as its handler reports it: the latest valid value (thread-safe), and `on_report`
    told of each one (the worker's writer; it must not block)."""

    def __init__(
        self, clock: Clock | None = None, on_report: Callable[[ProgressReport, Progress], None] | None = None
    ) -> None:
        self._clock: Clock = clock or UtcClock()
        self._on_report = on_report
        self._lock = threading.Lock()
        self._latest: Progress | None = None

    def report(self, fraction: float, message: str | None = None) -> None:
        progress = checked_progress(fraction, message, self._clock.now())
        with self._lock:
            self._latest = progress
        if self._on_report is not None:
            self._on_report(self, progress)

    @property
    def latest(self) -> Progress | None:
        with self._lock:
            return self._latest


class ProgressSink(Protocol):
    """Where the processor gets each attempt's ProgressReport (the worker's writer stores it while the handler
    runs), and what it takes back when the handler ends: the last value, stored with the outcome."""

    def open(
        self, job_id: str, attempt: int, hold: Hold | None = None, claim: Callable[[], int | None] | None = None
    ) -> ProgressReport:
        """`hold`: the worker's hold on the job's message; no write goes out once it was released. `claim`: the
        attempt runs unclaimed (runtime/domain/lazy_claim.py); called before a progress write, it claims the job
        and gives the attempt to write under (None: the job is not this attempt's, write nothing)."""
        ...

    def close(self, report: ProgressReport) -> Progress | None: ...


class OutcomeOnlyProgress:
    """A ProgressSink that writes nothing while the handler runs: the last value goes with the outcome only."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock

    def open(
        self, job_id: str, attempt: int, hold: Hold | None = None, claim: Callable[[], int | None] | None = None
    ) -> ProgressReport:
        return ProgressReport(self._clock)

    def close(self, report: ProgressReport) -> Progress | None:
        return report.latest


K = TypeVar("K", bound=Hashable)


@dataclass
class _Entry:
    latest: Progress
    reported_at: float  # monotonic seconds of the first report
    written: Progress | None = None
    written_at: float | None = None  # monotonic seconds of the last write taken


class ProgressThrottle(Generic[K]):
    """Which jobs' progress is due a write: a job's latest value once it differs from what was last written and
    its last write (or, for the first, its first report) is at least `interval_s` old. So a job that ends within an
    interval of its first report never costs a progress write: its last value goes with the outcome's write.
    Times are monotonic seconds passed in (a fake clock in tests).
    Not thread-safe on its own: the writer calls it under its lock."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._entries: dict[K, _Entry] = {}

    def reported(self, key: K, progress: Progress, now: float) -> bool:
        """Notes the key's latest value; True when it had none waiting before (the writer's next wake-up may have
        to come sooner), False when it only replaces a value already waiting for its write."""
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(progress, reported_at=now)
            return True
        waiting = entry.latest != entry.written
        entry.latest = progress
        return not waiting

    def due(self, now: float) -> list[tuple[K, Progress]]:
        """The writes to make now; each is counted as written at `now` (a failed one is tried again an interval
        later: `failed`)."""
        taken: list[tuple[K, Progress]] = []
        for key, entry in self._entries.items():
            if entry.latest != entry.written and self._ready(entry, now):
                entry.written, entry.written_at = entry.latest, now
                taken.append((key, entry.latest))
        return taken

    def wait_s(self, now: float) -> float | None:
        """Seconds until the next write is due (0: now); None when no job has an unwritten value."""
        waits = [
            max(0.0, self._since(entry) + self._interval_s - now)
            for entry in self._entries.values()
            if entry.latest != entry.written
        ]
        return min(waits) if waits else None

    def failed(self, key: K) -> None:
        """The write `due` took for `key` did not land: its value is due again one interval after the try."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.written = None

    def forget(self, key: K) -> None:
        """The attempt ended: its last value goes with the outcome's write, not through here."""
        self._entries.pop(key, None)

    def _ready(self, entry: _Entry, now: float) -> bool:
        return now - self._since(entry) >= self._interval_s

    @staticmethod
    def _since(entry: _Entry) -> float:
        return entry.reported_at if entry.written_at is None else entry.written_at
