"""JobService.submit_many against in-memory fakes: item-by-item answers, repeated keys within one call, parallel
writes, messages in batches, one item's store failure touching no other item, and a stop point past which no
write starts."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from runtime.domain.job import Job
from runtime.domain.ports import CreateOutcome, JobStoreUnavailable
from runtime.domain.submit import (
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    JobService,
    SubmitNotStarted,
    SubmitResult,
)
from tests.unit.fakes import FakeClock, FakeQueue, InMemoryJobStore
from tests.unit.job_service_support import IN_FLIGHT_S, request, service_of


def test_answers_come_in_order_with_one_message_per_created_job(service: JobService, queue: FakeQueue) -> None:
    requests = [request(key=None, params={"n": n}) for n in range(25)]
    with ThreadPoolExecutor(4) as executor:
        outcomes = service.submit_many(requests, executor=executor)
    assert all(isinstance(outcome, SubmitResult) and outcome.created and outcome.published for outcome in outcomes)
    jobs = [outcome.job for outcome in outcomes if isinstance(outcome, SubmitResult)]
    assert [job.params for job in jobs] == [{"n": n} for n in range(25)]
    assert sorted(message.job_id for message in queue.sent) == sorted(job.job_id for job in jobs)
    assert queue.send_calls == 3  # 25 messages: 10 + 10 + 5


def test_a_key_repeated_in_one_call_replays_the_first_item_or_is_reused(
    service: JobService, store: InMemoryJobStore, queue: FakeQueue
) -> None:
    outcomes = service.submit_many([request(key="k"), request(key="k"), request(key="k", params={"a": 2})])
    first, repeat, other = outcomes
    assert isinstance(first, SubmitResult) and first.created
    assert isinstance(repeat, SubmitResult) and not repeat.created and repeat.job.job_id == first.job.job_id
    assert isinstance(other, IdempotencyKeyReused) and other.job.job_id == first.job.job_id
    assert len(store.jobs) == 1 and len(queue.sent) == 1


def test_a_repeat_of_a_recent_earlier_call_is_in_flight_and_later_a_replay(
    service: JobService, clock: FakeClock, queue: FakeQueue
) -> None:
    created = service.submit_many([request(key="k")])[0]
    assert isinstance(created, SubmitResult)
    assert isinstance(service.submit_many([request(key="k")])[0], IdempotencyKeyInFlight)
    clock.advance(IN_FLIGHT_S + 1)
    replayed = service.submit_many([request(key="k")])[0]
    assert isinstance(replayed, SubmitResult) and not replayed.created
    assert replayed.job.job_id == created.job.job_id and len(queue.sent) == 1


class FailingForSomeStore(InMemoryJobStore):
    """Refuses (unavailable) the jobs whose params carry "down": true."""

    def create(self, job: Job) -> CreateOutcome:
        if job.params.get("down"):
            raise JobStoreUnavailable("store down for this write")
        return super().create(job)


def test_one_item_store_failure_leaves_the_others_created(queue: FakeQueue, clock: FakeClock) -> None:
    service = service_of(FailingForSomeStore(), queue, clock)
    outcomes = service.submit_many(
        [
            request(key=None, params={"n": 1}),
            request(key=None, params={"down": True}),
            request(key="k", params={"n": 3}),
        ]
    )
    assert isinstance(outcomes[0], SubmitResult) and outcomes[0].created
    assert isinstance(outcomes[1], JobStoreUnavailable)
    assert isinstance(outcomes[2], SubmitResult) and outcomes[2].created
    assert len(queue.sent) == 2


def test_a_queue_outage_still_creates_the_jobs_unpublished(
    service: JobService, queue: FakeQueue, store: InMemoryJobStore
) -> None:
    queue.fail_send = True
    outcomes = service.submit_many([request(key=None), request(key="k")])
    assert all(isinstance(outcome, SubmitResult) and outcome.created and not outcome.published for outcome in outcomes)
    assert len(store.jobs) == 2 and queue.sent == []


class StopAfter:
    """A `may_start` that allows `allowed` writes, then none (thread-safe: the writes may run in parallel)."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.asked = 0
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            self.asked += 1
            return self.asked <= self.allowed


def test_items_past_the_stop_point_are_not_started_and_only_the_written_ones_are_published(
    service: JobService, store: InMemoryJobStore, queue: FakeQueue
) -> None:
    outcomes = service.submit_many([request(key=None, params={"n": n}) for n in range(10)], may_start=StopAfter(4))
    written, unstarted = outcomes[:4], outcomes[4:]
    assert all(isinstance(outcome, SubmitResult) and outcome.created and outcome.published for outcome in written)
    assert all(isinstance(outcome, SubmitNotStarted) for outcome in unstarted)
    jobs = [outcome.job for outcome in written if isinstance(outcome, SubmitResult)]
    assert [job.params for job in jobs] == [{"n": n} for n in range(4)]
    assert sorted(store.jobs) == sorted(job.job_id for job in jobs)
    assert sorted(message.job_id for message in queue.sent) == sorted(job.job_id for job in jobs)


def test_jobs_whose_send_is_held_back_are_created_unpublished_and_left_to_the_republisher(
    service: JobService, store: InMemoryJobStore, queue: FakeQueue
) -> None:
    outcomes = service.submit_many([request(key=None, params={"n": n}) for n in range(5)], may_send=lambda: False)
    assert all(isinstance(outcome, SubmitResult) and outcome.created and not outcome.published for outcome in outcomes)
    assert len(store.jobs) == 5 and queue.sent == []
    # Still PENDING with their pending marker: the republisher's sweep finds them.
    assert all(job.pending_since is not None for job in store.jobs.values())


def test_with_parallel_writes_the_stop_point_is_asked_as_each_write_starts(
    service: JobService, store: InMemoryJobStore, queue: FakeQueue
) -> None:
    requests = [request(key=None, params={"n": n}) for n in range(30)] + [request(key=f"k{n}") for n in range(10)]
    with ThreadPoolExecutor(4) as executor:
        outcomes = service.submit_many(requests, executor=executor, may_start=StopAfter(17))
    created = [outcome for outcome in outcomes if isinstance(outcome, SubmitResult) and outcome.created]
    assert len(created) == 17 and len(store.jobs) == 17 and len(queue.sent) == 17
    assert sum(isinstance(outcome, SubmitNotStarted) for outcome in outcomes) == len(requests) - 17


def test_a_repeat_of_a_key_whose_first_item_was_not_started_is_not_a_replay(
    service: JobService, store: InMemoryJobStore, queue: FakeQueue
) -> None:
    # Groups run unkeyed items first, then each key's chain: the stop falls before the chain of "k".
    outcomes = service.submit_many(
        [request(key="k"), request(key=None), request(key="k"), request(key="k", params={"a": 2})],
        may_start=StopAfter(1),
    )
    assert isinstance(outcomes[1], SubmitResult) and outcomes[1].created
    assert all(isinstance(outcomes[index], SubmitNotStarted) for index in (0, 2, 3)), outcomes
    assert len(store.jobs) == 1 and len(queue.sent) == 1


def test_a_repeat_of_a_key_written_before_the_stop_point_is_still_its_replay(
    service: JobService, store: InMemoryJobStore, queue: FakeQueue
) -> None:
    # The repeats need no write: they are decided against the first item's job, whatever the stop point says.
    stop = StopAfter(1)
    first, repeat, other = service.submit_many(
        [request(key="k"), request(key="k"), request(key="k", params={"a": 2})], may_start=stop
    )
    assert isinstance(first, SubmitResult) and first.created
    assert isinstance(repeat, SubmitResult) and not repeat.created and repeat.job.job_id == first.job.job_id
    assert isinstance(other, IdempotencyKeyReused)
    assert stop.asked == 1 and len(store.jobs) == 1 and len(queue.sent) == 1


def test_a_repeat_after_a_failed_first_item_is_not_started_past_the_stop_point(
    queue: FakeQueue, clock: FakeClock
) -> None:
    # The first item got no job (the store refused it): its repeat would be a write of its own, and is not started.
    service = service_of(FailingForSomeStore(), queue, clock)
    first, repeat = service.submit_many(
        [request(key="k", params={"down": True}), request(key="k", params={"down": True})], may_start=StopAfter(1)
    )
    assert isinstance(first, JobStoreUnavailable) and isinstance(repeat, SubmitNotStarted)
    assert queue.sent == []
