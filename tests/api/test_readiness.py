"""The readiness probe: store and queue pinged at most once per cache period; the reason names the failing
one and nothing internal."""

from __future__ import annotations

import asyncio
import threading
import time

from runtime.api.routes_health import ReadinessProbe
from runtime.domain.ports import JobStoreUnavailable, QueueUnavailable


class Pingable:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.pings = 0

    def ping(self) -> None:
        self.pings += 1
        if self.error is not None:
            raise self.error


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_answers_are_cached_for_the_period() -> None:
    store, queue, clock = Pingable(), Pingable(), FakeMonotonic()
    probe = ReadinessProbe(store, queue, timeout_s=1.0, cache_s=1.0, monotonic=clock)  # type: ignore[arg-type]
    assert probe.check() is None
    clock.now += 0.5
    assert probe.check() is None
    assert (store.pings, queue.pings) == (1, 1)
    clock.now += 0.6
    store.error = JobStoreUnavailable("dynamodb describe_table failed: ResourceNotFoundException")
    assert probe.check() == "job store is not answering"  # the exception's text is for the logs only
    assert queue.pings == 1  # the queue is not asked when the store already failed


def test_queue_failure_is_named() -> None:
    probe = ReadinessProbe(
        Pingable(),
        Pingable(QueueUnavailable("sqs get_queue_attributes failed")),  # type: ignore[arg-type]
        timeout_s=1.0,
        monotonic=FakeMonotonic(),
    )
    assert probe.check() == "queue is not answering"


class Frozen:
    """A dependency that does not answer until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.pings = 0

    def ping(self) -> None:
        self.pings += 1
        self.release.wait(timeout=30)


def test_a_frozen_dependency_is_not_ready_within_the_timeout_and_pinged_once() -> None:
    store, clock = Frozen(), FakeMonotonic()
    probe = ReadinessProbe(store, Pingable(), timeout_s=0.2, cache_s=1.0, monotonic=clock)  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        assert probe.check() == "job store is not answering"
        clock.now += 1.1
        assert asyncio.run(probe.check_async()) == "job store is not answering"
        assert time.monotonic() - started < 1.0
        assert store.pings == 1  # the stuck ping is waited for again, not doubled
        store.release.set()
        clock.now += 1.1
        assert probe.check() is None
    finally:
        store.release.set()
