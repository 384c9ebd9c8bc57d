"""Submit, get and retry use cases against plain in-memory fakes (no AWS): the idempotency rules."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from runtime.domain.job import Job, JobError, JobStatus, Priority
from runtime.domain.ports import CreateOutcome, JobMessage
from runtime.domain.submit import (
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    JobNotFound,
    JobNotRetryable,
    JobService,
    job_id_for_key,
)
from tests.unit.fakes import FakeClock, FakeQueue, InMemoryJobStore
from tests.unit.job_service_support import (
    IN_FLIGHT_S,
    RETENTION_S,
    RETRY_REPUBLISH_AFTER_S,
    TTL_S,
    request,
    service_of,
)


def test_new_job_is_pending_with_marker_retention_and_one_message(
    service: JobService, store: InMemoryJobStore, queue: FakeQueue, clock: FakeClock
) -> None:
    result = service.submit(request(key=None))
    job = result.job
    assert result.created and result.published
    assert job.status == JobStatus.PENDING
    assert job.pending_since == clock.now() and job.transitions == {"PENDING": clock.now()}
    assert job.expires_at == int(clock.now().timestamp()) + RETENTION_S
    assert job.idempotency_key is None
    # The message is marked as the submit's, so that its worker may run the job before claiming it.
    assert queue.sent == [JobMessage(job_id=job.job_id, trace_id="trace-1", from_submit=True)]
    assert store.calls.count("create") == 1


def test_keyed_job_id_is_derived_from_tenant_key_and_generation(service: JobService) -> None:
    job = service.submit(request()).job
    assert job.tenant == "acme"
    assert job.job_id == job_id_for_key("acme", "k1", 0)
    assert job.idempotency_key == "acme#k1"
    assert job_id_for_key("acme", "k1", 1) != job.job_id
    assert job_id_for_key("other", "k1", 0) != job.job_id


def test_the_same_key_in_two_tenants_makes_two_jobs(service: JobService, queue: FakeQueue) -> None:
    ours = service.submit(request())
    theirs = service.submit(request(tenant="other"))
    assert ours.created and theirs.created
    assert ours.job.job_id != theirs.job.job_id and theirs.job.tenant == "other"
    assert len(queue.sent) == 2


def test_another_tenants_job_does_not_exist_for_get_or_retry(service: JobService, store: InMemoryJobStore) -> None:
    job = service.submit(request(key=None)).job
    store.set_status(job.job_id, JobStatus.FAILED_FINAL)
    with pytest.raises(JobNotFound):
        service.get(job.job_id, tenant="other")
    with pytest.raises(JobNotFound):
        service.retry(job.job_id, tenant="other")
    assert store.get(job.job_id).status == JobStatus.FAILED_FINAL  # type: ignore[union-attr]
    assert service.get(job.job_id, tenant="acme").job_id == job.job_id


def test_replay_while_pending_and_young_is_in_flight(service: JobService, clock: FakeClock) -> None:
    first = service.submit(request()).job
    clock.advance(2)
    with pytest.raises(IdempotencyKeyInFlight) as caught:
        service.submit(request())
    assert caught.value.job.job_id == first.job_id
    assert caught.value.retry_after_s == 3


def test_replay_after_in_flight_window_returns_the_job_as_it_is(
    service: JobService, store: InMemoryJobStore, queue: FakeQueue, clock: FakeClock
) -> None:
    first = service.submit(request()).job
    clock.advance(IN_FLIGHT_S + 1)
    replay = service.submit(request())
    assert not replay.created and replay.job.job_id == first.job_id
    store.set_status(first.job_id, JobStatus.SUCCEEDED)
    replay = service.submit(request())
    assert replay.job.status == JobStatus.SUCCEEDED
    assert len(queue.sent) == 1 and len(store.jobs) == 1


def test_replay_of_a_claimed_job_is_not_in_flight(service: JobService, store: InMemoryJobStore) -> None:
    first = service.submit(request()).job
    store.set_status(first.job_id, JobStatus.PROCESSING)
    assert service.submit(request()).job.status == JobStatus.PROCESSING


@pytest.mark.parametrize(
    "changes",
    [{"params": {"a": 2}}, {"priority": Priority.HIGH}, {"metadata": {"m": 1}}, {"job_type": "u"}],
)
def test_same_key_other_body_is_refused(
    service: JobService, store: InMemoryJobStore, queue: FakeQueue, changes: dict[str, Any]
) -> None:
    service.submit(request())
    with pytest.raises(IdempotencyKeyReused):
        service.submit(request(**changes))
    assert len(store.jobs) == 1 and len(queue.sent) == 1


def test_trace_id_is_not_part_of_the_body(service: JobService, clock: FakeClock) -> None:
    service.submit(request())
    clock.advance(60)
    assert not service.submit(request(trace_id="another")).created


def test_after_the_ttl_the_key_starts_generation_one(
    service: JobService, store: InMemoryJobStore, queue: FakeQueue, clock: FakeClock
) -> None:
    first = service.submit(request()).job
    clock.advance(TTL_S + 1)
    second = service.submit(request(params={"a": "different body is fine now"}))
    assert second.created
    assert second.job.job_id == job_id_for_key("acme", "k1", 1)
    head = store.jobs[first.job_id]
    assert head.key_generation == 1
    assert head.expires_at == second.job.expires_at  # the head lives as long as the live generation
    assert len(queue.sent) == 2
    # Within the new generation's TTL the key replays generation 1, found through the head.
    clock.advance(IN_FLIGHT_S + 1)
    replay = service.submit(request(params={"a": "different body is fine now"}))
    assert not replay.created and replay.job.job_id == second.job.job_id
    with pytest.raises(IdempotencyKeyReused):
        service.submit(request())


def test_generations_keep_advancing(service: JobService, store: InMemoryJobStore, clock: FakeClock) -> None:
    service.submit(request())
    for generation in (1, 2, 3):
        clock.advance(TTL_S + 1)
        result = service.submit(request())
        assert result.created and result.job.job_id == job_id_for_key("acme", "k1", generation)
    assert store.jobs[job_id_for_key("acme", "k1", 0)].key_generation == 3


def test_crash_between_advance_and_create_heals(service: JobService, store: InMemoryJobStore, clock: FakeClock) -> None:
    head = service.submit(request()).job
    clock.advance(TTL_S + 1)
    # A request advanced the head and died before creating generation 1.
    assert store.advance_key_generation(head.job_id, expected=0, new=1, keep_until=0)
    result = service.submit(request())
    assert result.created and result.job.job_id == job_id_for_key("acme", "k1", 1)


def test_concurrent_submits_create_one_job(service: JobService, store: InMemoryJobStore, queue: FakeQueue) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(20)

    def submit() -> None:
        barrier.wait()
        try:
            outcomes.append("created" if service.submit(request()).created else "replayed")
        except IdempotencyKeyInFlight:
            outcomes.append("in_flight")

    threads = [threading.Thread(target=submit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("created") == 1
    assert outcomes.count("in_flight") == 19
    assert len(store.jobs) == 1 and len(queue.sent) == 1


class RetriedPutStore(InMemoryJobStore):
    """The SDK's retry of a put whose first attempt was stored but not answered: the retry finds the item."""

    def create(self, job: Job) -> CreateOutcome:
        super().create(job)
        return CreateOutcome(created=False, job=self.jobs[job.job_id])


@pytest.mark.parametrize("key", [None, "k1"], ids=["unkeyed", "keyed"])
def test_a_request_that_meets_its_own_write_created_it(queue: FakeQueue, clock: FakeClock, key: str | None) -> None:
    store = RetriedPutStore()
    result = service_of(store, queue, clock).submit(request(key))
    assert result.created and result.published
    assert len(store.jobs) == 1 and len(queue.sent) == 1
    # Another request (another token) meeting that job is still a replay.
    if key is not None:
        clock.advance(IN_FLIGHT_S)
        assert not service_of(store, queue, clock).submit(request(key)).created


def test_queue_down_still_creates_the_job(service: JobService, store: InMemoryJobStore, queue: FakeQueue) -> None:
    queue.fail_send = True
    result = service.submit(request())
    assert result.created and not result.published
    assert store.jobs[result.job.job_id].status == JobStatus.PENDING
    assert store.jobs[result.job.job_id].pending_since is not None


def test_get_unknown_raises(service: JobService) -> None:
    with pytest.raises(JobNotFound):
        service.get("nope", tenant="acme")


def test_retry_of_failed_job_publishes_again(service: JobService, store: InMemoryJobStore, queue: FakeQueue) -> None:
    job = service.submit(request()).job
    store.set_status(job.job_id, JobStatus.FAILED)
    result = service.retry(job.job_id, tenant="acme")
    assert result.published and result.job.status == JobStatus.FAILED
    assert len(queue.sent) == 2


def test_retry_of_pending_job_publishes_only_when_its_last_publish_is_old(
    service: JobService, store: InMemoryJobStore, queue: FakeQueue, clock: FakeClock
) -> None:
    job = service.submit(request()).job
    clock.advance(RETRY_REPUBLISH_AFTER_S - 1)
    fresh = service.retry(job.job_id, tenant="acme")
    assert not fresh.published and len(queue.sent) == 1  # its first message is likely still in the queue
    clock.advance(1)
    stale = service.retry(job.job_id, tenant="acme")
    assert stale.published and stale.job.pending_since == clock.now()
    assert store.jobs[job.job_id].pending_since == clock.now()  # the marker moved: the next retry waits again
    assert not service.retry(job.job_id, tenant="acme").published
    assert len(queue.sent) == 2


@pytest.mark.parametrize("status", [JobStatus.FAILED_FINAL, JobStatus.PENDING])
def test_concurrent_retries_publish_once(
    service: JobService, store: InMemoryJobStore, queue: FakeQueue, clock: FakeClock, status: JobStatus
) -> None:
    job = service.submit(request()).job
    store.jobs[job.job_id] = job.replace(status=status)
    clock.advance(RETRY_REPUBLISH_AFTER_S)
    barrier = threading.Barrier(20)
    answers: list[JobStatus] = []

    def retry() -> None:
        barrier.wait()
        answers.append(service.retry(job.job_id, tenant="acme").job.status)

    threads = [threading.Thread(target=retry) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [JobStatus.PENDING] * 20
    assert len(queue.sent) == 2  # the submit's message and one retry's


def test_retry_of_failed_final_requeues(
    service: JobService, store: InMemoryJobStore, queue: FakeQueue, clock: FakeClock
) -> None:
    job = service.submit(request()).job
    store.jobs[job.job_id] = job.replace(
        status=JobStatus.FAILED_FINAL, pending_since=None, error=JobError("boom", "it broke", permanent=True)
    )
    clock.advance(10)
    result = service.retry(job.job_id, tenant="acme")
    assert result.job.status == JobStatus.PENDING and result.job.pending_since == clock.now()
    assert result.job.error is None
    assert len(queue.sent) == 2


@pytest.mark.parametrize("status", [JobStatus.PROCESSING, JobStatus.SUCCEEDED])
def test_retry_of_running_or_done_job_is_refused(
    service: JobService, store: InMemoryJobStore, queue: FakeQueue, status: JobStatus
) -> None:
    job = service.submit(request()).job
    store.set_status(job.job_id, status)
    with pytest.raises(JobNotRetryable):
        service.retry(job.job_id, tenant="acme")
    assert len(queue.sent) == 1


def test_retry_unknown_raises(service: JobService) -> None:
    with pytest.raises(JobNotFound):
        service.retry("nope", tenant="acme")
