"""The numbers the web console shows beside the job list: how deep the queues are, and how many of the caller's jobs
finished in the last hour.

Both are read cheaply and cached per process for `cache_s`, so that many open consoles polling every few seconds
cost at most one read of each per process (per tenant for the counts) in that time:
- queue depth: one GetQueueAttributes per priority queue. The queues are shared by every tenant, so these are the
  whole service's figures (how much work is ahead), not the caller's;
- finished jobs: one Query on the caller's listing index (newest first), reading at most `MAX_EXAMINED` jobs that
  were created within `CREATED_LOOKBACK` + `WINDOW`, counting those whose terminal transition falls in `WINDOW`.
  A job that finished in the window but was created earlier than that (one scheduled far ahead, say) is not
  counted; when the Query stopped before the end of that range, `complete` is false and the counts are a floor.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from runtime.domain.job import TERMINAL_STATUSES, JobStatus, Priority
from runtime.domain.ports import Clock

WINDOW: Final = timedelta(hours=1)
CREATED_LOOKBACK: Final = timedelta(hours=24)
MAX_EXAMINED: Final = 1000
CACHE_S: Final = 5.0
# Tenants whose counts one process keeps at once (the least recently read are dropped first).
MAX_CACHED_TENANTS: Final = 1024
# The terminal statuses in the order they are shown.
FINISHED_STATUSES: Final = tuple(status for status in JobStatus if status in TERMINAL_STATUSES)


@dataclass(frozen=True)
class QueueDepth:
    """One priority queue's approximate counts, as SQS reports them."""

    priority: Priority
    visible: int  # waiting for a worker
    in_flight: int  # received by a worker and not yet deleted
    delayed: int  # sent with a delay that has not passed yet


@dataclass(frozen=True)
class FinishedCount:
    """A tenant's jobs that reached each terminal status since `since` (see the module docstring)."""

    since: datetime
    by_status: Mapping[JobStatus, int]
    complete: bool


@dataclass(frozen=True)
class Stats:
    queues: Sequence[QueueDepth]
    queues_read_at: datetime
    finished: FinishedCount
    finished_read_at: datetime


class QueueDepthReader(Protocol):
    def depths(self) -> Sequence[QueueDepth]:
        """Every priority queue's depth, highest priority first. Raises QueueUnavailable."""


class FinishedCounter(Protocol):
    def count_finished(
        self, tenant: str, *, finished_since: datetime, created_since: datetime, max_examined: int
    ) -> FinishedCount:
        """The tenant's jobs created at or after `created_since` that reached a terminal status at or after
        `finished_since`, examining at most `max_examined` jobs. Raises JobStoreUnavailable."""


class StatsReader:
    """Serves Stats from a per-process cache, refreshing each part when it is older than `cache_s`."""

    def __init__(
        self,
        queues: QueueDepthReader,
        counter: FinishedCounter,
        clock: Clock,
        *,
        cache_s: float = CACHE_S,
        max_tenants: int = MAX_CACHED_TENANTS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queues = queues
        self._counter = counter
        self._clock = clock
        self._cache_s = cache_s
        self._max_tenants = max_tenants
        self._monotonic = monotonic
        # One lock per part: a slow Query of one tenant does not hold up the queue figures.
        self._queue_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._queue_entry: tuple[float, datetime, Sequence[QueueDepth]] | None = None
        self._counts: OrderedDict[str, tuple[float, datetime, FinishedCount]] = OrderedDict()

    def read(self, tenant: str) -> Stats:
        queues_read_at, queues = self._queue_depths()
        finished_read_at, finished = self._finished(tenant)
        return Stats(queues=queues, queues_read_at=queues_read_at, finished=finished, finished_read_at=finished_read_at)

    def _fresh(self, read_at: float) -> bool:
        return self._monotonic() - read_at < self._cache_s

    def _queue_depths(self) -> tuple[datetime, Sequence[QueueDepth]]:
        with self._queue_lock:
            if self._queue_entry is None or not self._fresh(self._queue_entry[0]):
                depths = tuple(self._queues.depths())
                self._queue_entry = (self._monotonic(), self._clock.now(), depths)
            return self._queue_entry[1], self._queue_entry[2]

    def _finished(self, tenant: str) -> tuple[datetime, FinishedCount]:
        with self._count_lock:
            entry = self._counts.get(tenant)
            if entry is not None and self._fresh(entry[0]):
                self._counts.move_to_end(tenant)
                return entry[1], entry[2]
        # Outside the lock: one tenant's Query must not queue the others' cached answers behind it.
        now = self._clock.now()
        since = now - WINDOW
        count = self._counter.count_finished(
            tenant, finished_since=since, created_since=since - CREATED_LOOKBACK, max_examined=MAX_EXAMINED
        )
        with self._count_lock:
            self._counts[tenant] = (self._monotonic(), now, count)
            self._counts.move_to_end(tenant)
            while len(self._counts) > self._max_tenants:
                self._counts.popitem(last=False)
        return now, count
