"""The console's stats cache (runtime/domain/stats.py): each part read at most once per `cache_s` per process,
counts per tenant, a bounded number of tenants kept, the window and range handed to the counter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from runtime.domain.job import JobStatus, Priority
from runtime.domain.stats import CREATED_LOOKBACK, FINISHED_STATUSES, WINDOW, FinishedCount, QueueDepth, StatsReader

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


class Ticker:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class CountingQueues:
    def __init__(self) -> None:
        self.reads = 0

    def depths(self) -> Sequence[QueueDepth]:
        self.reads += 1
        return [QueueDepth(Priority.NORMAL, visible=self.reads, in_flight=0, delayed=0)]


class CountingCounter:
    def __init__(self) -> None:
        self.calls: list[tuple[str, datetime, datetime, int]] = []

    def count_finished(
        self, tenant: str, *, finished_since: datetime, created_since: datetime, max_examined: int
    ) -> FinishedCount:
        self.calls.append((tenant, finished_since, created_since, max_examined))
        return FinishedCount(
            since=finished_since, by_status=dict.fromkeys(FINISHED_STATUSES, len(self.calls)), complete=True
        )


def reader(cache_s: float = 5.0, max_tenants: int = 10) -> tuple[StatsReader, CountingQueues, CountingCounter, Ticker]:
    queues, counter, ticker = CountingQueues(), CountingCounter(), Ticker()
    stats = StatsReader(queues, counter, FixedClock(), cache_s=cache_s, max_tenants=max_tenants, monotonic=ticker)
    return stats, queues, counter, ticker


def test_each_part_is_read_once_per_cache_period() -> None:
    stats, queues, counter, ticker = reader()
    first = stats.read("a")
    ticker.t += 4.9
    again = stats.read("a")
    assert (queues.reads, len(counter.calls)) == (1, 1)
    assert again == first
    ticker.t += 0.2
    fresh = stats.read("a")
    assert (queues.reads, len(counter.calls)) == (2, 2)
    assert fresh.queues[0].visible == 2 and fresh.finished.by_status[JobStatus.SUCCEEDED] == 2


def test_queue_depth_is_shared_and_counts_are_per_tenant() -> None:
    stats, queues, counter, _ = reader()
    stats.read("a")
    stats.read("b")
    assert queues.reads == 1
    assert [call[0] for call in counter.calls] == ["a", "b"]


def test_counter_gets_the_last_hour_and_the_created_range() -> None:
    stats, _, counter, _ = reader()
    result = stats.read("a")
    ((_, finished_since, created_since, max_examined),) = counter.calls
    assert finished_since == NOW - WINDOW
    assert created_since == NOW - WINDOW - CREATED_LOOKBACK
    assert max_examined == 1000
    assert result.finished_read_at == NOW and result.queues_read_at == NOW


def test_at_most_max_tenants_are_kept_least_recently_read_dropped() -> None:
    stats, _, counter, _ = reader(max_tenants=2)
    for tenant in ("a", "b", "a", "c", "a", "b"):
        stats.read(tenant)
    # "b" was dropped when "c" came (a was read more recently), so it is read again at the end.
    assert [call[0] for call in counter.calls] == ["a", "b", "c", "b"]
