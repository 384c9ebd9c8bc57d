"""The readiness probe: store and queue pinged at most once per cache period; the reason names the failing
one and nothing internal."""

from __future__ import annotations

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
    probe = ReadinessProbe(store, queue, cache_s=1.0, monotonic=clock)  # type: ignore[arg-type]
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
        monotonic=FakeMonotonic(),
    )
    assert probe.check() == "queue is not answering"
