"""JobService.submit_many against in-memory fakes: item-by-item answers, repeated keys within one call, parallel
writes, messages in batches, and one item's store failure touching no other item."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from runtime.domain.job import Job
from runtime.domain.ports import CreateOutcome, JobStoreUnavailable
from runtime.domain.submit import IdempotencyKeyInFlight, IdempotencyKeyReused, JobService, SubmitResult
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
