"""DynamoDbJobStore against the moto server over HTTP: conditional transitions, indexes, compact items."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runtime.adapters.dynamodb.codec import job_to_item
from runtime.adapters.dynamodb.schema import Attr
from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.domain.job import Job, JobError, JobStatus, Priority
from runtime.domain.ports import JobStoreUnavailable, LeaseState
from runtime.observability import aws_calls
from tests.adapters.resources import counted_client, create_jobs_table, dead_client, unique

T0 = datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


@pytest.fixture(scope="module")
def table(moto_server: str) -> Iterator[str]:
    name = unique("store-jobs")
    create_jobs_table(moto_server, name)
    yield name


@pytest.fixture
def store(moto_server: str, table: str) -> DynamoDbJobStore:
    return DynamoDbJobStore(counted_client("dynamodb", moto_server), table)


def make_job(job_id: str | None = None, **changes: Any) -> Job:
    base: dict[str, Any] = {
        "job_id": job_id or unique("job"),
        "status": JobStatus.PENDING,
        "job_type": "process_document",
        "priority": Priority.NORMAL,
        "params": {
            "source": "s3://b/in.txt",
            "destination": "s3://b/out.json",
            "n": 3,
            "f": 1.5,
            "ok": True,
            "none": None,
            "list": [1, "two", {"three": 3.25}],
        },
        "metadata": {"owner": "team-a"},
        "created_at": T0,
        "updated_at": T0,
        "trace_id": "1-67c2f6c0-0123456789abcdef01234567",
        "fingerprint": "f" * 64,
        "transitions": {"PENDING": T0},
        "pending_since": T0,
        "expires_at": int(T0.timestamp()) + 30 * 86_400,
    }
    base.update(changes)
    return Job(**base)


def test_create_then_get_round_trips(store: DynamoDbJobStore) -> None:
    job = make_job(idempotency_key="anonymous#k")
    assert store.create(job).created
    assert store.get(job.job_id) == job


def test_create_never_overwrites_and_returns_the_existing(store: DynamoDbJobStore) -> None:
    job = make_job()
    store.create(job)
    aws_calls.reset()
    outcome = store.create(job.replace(params={"other": 1}))
    assert not outcome.created and outcome.job == job
    # ReturnValuesOnConditionCheckFailure=ALL_OLD: the conflict answers with the item, no extra read.
    assert aws_calls.snapshot()["other"] == {"dynamodb.PutItem": 1}


def test_get_unknown_is_none(store: DynamoDbJobStore) -> None:
    assert store.get("no-such-job") is None


def test_small_item_is_compact(store: DynamoDbJobStore) -> None:
    item = job_to_item(
        make_job(
            params={"source": "s3://bucket/input/doc.txt", "destination": "s3://bucket/output/doc.json"},
            idempotency_key="anonymous#" + "k" * 64,
        )
    )
    assert len(json.dumps(item)) < 1024
    assert Attr.RESULT not in item and Attr.ERROR not in item and Attr.KEY_GENERATION not in item


def claim(store: DynamoDbJobStore, job_id: str, now: datetime = T0) -> Any:
    return store.claim(job_id, now=now, lease_until=now + timedelta(seconds=60))


def test_claim_moves_pending_to_processing_and_drops_the_pending_marker(store: DynamoDbJobStore) -> None:
    job = make_job()
    store.create(job)
    outcome = claim(store, job.job_id)
    assert outcome.claimed and outcome.job is not None
    claimed = outcome.job
    assert claimed.status == JobStatus.PROCESSING and claimed.attempts == 1
    assert claimed.pending_since is None
    assert claimed.lease_expires_at == T0 + timedelta(seconds=60)
    assert set(claimed.transitions) == {"PENDING", "PROCESSING"}
    assert store.get(job.job_id) == claimed


def test_claim_under_a_live_lease_fails_and_returns_the_job(store: DynamoDbJobStore) -> None:
    job = make_job()
    store.create(job)
    claim(store, job.job_id)
    outcome = claim(store, job.job_id, now=T0 + timedelta(seconds=30))
    assert not outcome.claimed and outcome.job is not None and outcome.job.attempts == 1


def test_claim_after_the_lease_expired_takes_over(store: DynamoDbJobStore) -> None:
    job = make_job()
    store.create(job)
    claim(store, job.job_id)
    outcome = claim(store, job.job_id, now=T0 + timedelta(seconds=61))
    assert outcome.claimed and outcome.job is not None and outcome.job.attempts == 2
    # The first worker's attempt can no longer finish the job.
    assert not store.succeed(job.job_id, attempt=1, result={}, now=T0)


def test_claim_unknown_job(store: DynamoDbJobStore) -> None:
    outcome = claim(store, "no-such-job")
    assert not outcome.claimed and outcome.job is None
    assert store.get("no-such-job") is None  # the failed update created nothing


def test_succeed_is_conditional_and_terminal(store: DynamoDbJobStore) -> None:
    job = make_job()
    store.create(job)
    claim(store, job.job_id)
    assert not store.succeed(job.job_id, attempt=2, result={"x": 1}, now=T0)
    assert store.succeed(job.job_id, attempt=1, result={"x": 1, "y": [1.5]}, now=T0 + timedelta(seconds=1))
    done = store.get(job.job_id)
    assert done is not None and done.status == JobStatus.SUCCEEDED and done.result == {"x": 1, "y": [1.5]}
    assert done.lease_expires_at is None and "SUCCEEDED" in done.transitions
    # A late or duplicate message moves nothing.
    assert not claim(store, job.job_id).claimed
    assert store.fail_final(job.job_id, error=JobError("dead_lettered", "x"), now=T0) is None
    assert store.requeue(job.job_id, now=T0) is None


def test_fail_then_retry_then_fail_final(store: DynamoDbJobStore) -> None:
    job = make_job()
    store.create(job)
    claim(store, job.job_id)
    error = JobError("timeout", "dependency timed out")
    assert store.fail(job.job_id, attempt=1, error=error, final=False, now=T0)
    failed = store.get(job.job_id)
    assert failed is not None and failed.status == JobStatus.FAILED and failed.error == error
    outcome = claim(store, job.job_id)
    assert outcome.claimed and outcome.job is not None and outcome.job.attempts == 2
    final_error = JobError("bad_input", "source missing", permanent=True)
    assert store.fail(job.job_id, attempt=2, error=final_error, final=True, now=T0)
    final = store.get(job.job_id)
    assert final is not None and final.status == JobStatus.FAILED_FINAL and final.error == final_error


def test_extend_lease_only_for_the_current_attempt(store: DynamoDbJobStore) -> None:
    job = make_job()
    store.create(job)
    claim(store, job.job_id)
    later = T0 + timedelta(minutes=5)
    assert store.extend_lease(job.job_id, attempt=1, lease_until=later) is LeaseState.HELD
    assert store.extend_lease(job.job_id, attempt=2, lease_until=later) is LeaseState.LOST
    current = store.get(job.job_id)
    assert current is not None and current.lease_expires_at == later


def test_fail_final_from_any_non_terminal_state_but_a_live_lease(store: DynamoDbJobStore) -> None:
    error = JobError("dead_lettered", "received 3 times")
    pending = make_job()
    store.create(pending)
    after = store.fail_final(pending.job_id, error=error, now=T0)
    assert after is not None and after.status == JobStatus.FAILED_FINAL and after.pending_since is None
    assert store.fail_final(pending.job_id, error=error, now=T0) is None
    assert store.fail_final("no-such-job", error=error, now=T0) is None
    processing = make_job()
    store.create(processing)
    claimed = claim(store, processing.job_id).job
    assert claimed is not None and claimed.lease_expires_at is not None
    # Its worker holds a live lease: the dead-letter verdict must wait for it.
    assert store.fail_final(processing.job_id, error=error, now=claimed.lease_expires_at - timedelta(seconds=1)) is None
    assert store.get(processing.job_id) == claimed
    after = store.fail_final(processing.job_id, error=error, now=claimed.lease_expires_at + timedelta(seconds=1))
    assert after is not None and after.error == error and after.lease_expires_at is None


def test_requeue_only_from_failed_final(store: DynamoDbJobStore) -> None:
    job = make_job()
    store.create(job)
    assert store.requeue(job.job_id, now=T0) is None
    claim(store, job.job_id)
    store.fail(job.job_id, attempt=1, error=JobError("x", "y"), final=True, now=T0)
    later = T0 + timedelta(hours=1)
    requeued = store.requeue(job.job_id, now=later)
    assert requeued is not None and requeued.status == JobStatus.PENDING
    assert requeued.pending_since == later and requeued.error is None and requeued.attempts == 1
    assert requeued.retry_base == 1 and requeued.attempts_since_retry == 0  # a fresh attempt budget
    assert store.requeue(job.job_id, now=later) is None


def test_mark_redriven_counts_once_per_read_state_and_never_under_a_live_lease(store: DynamoDbJobStore) -> None:
    """The DLQ handler's redrive write: conditional on the job as read (so of two dead letters read at once one
    wins), on no live lease and on the limit; it moves a PENDING job's marker, and a manual retry clears it."""
    pending = make_job()
    store.create(pending)
    marker = T0 + timedelta(minutes=5)

    def redrive(seen: Job, dead_letter_id: str, *, limit: int = 3, pending_since: datetime | None = None) -> bool:
        return store.mark_redriven(
            pending.job_id, seen=seen, dead_letter_id=dead_letter_id, limit=limit, now=T0, pending_since=pending_since
        )

    assert redrive(pending, "dl-1", pending_since=marker)
    once = store.get(pending.job_id)
    assert once is not None and (once.redrives, once.redriven_by, once.pending_since) == (1, "dl-1", marker)
    assert once.status is JobStatus.PENDING and once.attempts == 0
    # The same read again (a concurrent duplicate dead letter): its write finds the job changed.
    assert not redrive(pending, "dl-1", pending_since=marker)
    assert redrive(once, "dl-2")
    twice = store.get(pending.job_id)
    assert twice is not None and (twice.redrives, twice.redriven_by, twice.pending_since) == (2, "dl-2", marker)
    # At the limit nothing is written.
    assert not redrive(twice, "dl-3", limit=2)
    assert store.get(pending.job_id) == twice

    processing = make_job()
    store.create(processing)
    claimed = claim(store, processing.job_id).job
    assert claimed is not None and claimed.lease_expires_at is not None
    live, expired = claimed.lease_expires_at - timedelta(seconds=1), claimed.lease_expires_at + timedelta(seconds=1)
    assert not store.mark_redriven(
        processing.job_id, seen=claimed, dead_letter_id="dl", limit=3, now=live, pending_since=None
    )
    assert store.mark_redriven(
        processing.job_id, seen=claimed, dead_letter_id="dl", limit=3, now=expired, pending_since=None
    )
    redriven = store.get(processing.job_id)
    assert redriven is not None and redriven.status is JobStatus.PROCESSING and redriven.redrives == 1
    assert redriven.attempts == claimed.attempts and redriven.lease_expires_at == claimed.lease_expires_at

    # A manual retry starts the count over, as it does the attempt budget.
    store.fail_final(processing.job_id, error=JobError("dead_lettered", "x"), now=expired)
    requeued = store.requeue(processing.job_id, now=expired)
    assert requeued is not None and (requeued.redrives, requeued.redriven_by) == (0, None)


def test_stuck_pending_and_mark_republished(store: DynamoDbJobStore, moto_server: str) -> None:
    # A fresh table: other tests leave PENDING jobs behind.
    name = unique("stuck-jobs")
    create_jobs_table(moto_server, name)
    store = DynamoDbJobStore(counted_client("dynamodb", moto_server), name)
    old = [make_job(pending_since=T0 - timedelta(minutes=10 + i)) for i in range(5)]
    young = make_job(pending_since=T0)
    claimed = make_job(pending_since=T0 - timedelta(hours=1))
    for job in [*old, young, claimed]:
        store.create(job)
    claim(store, claimed.job_id)
    stuck = store.stuck_pending(older_than=T0 - timedelta(minutes=5), limit=100)
    assert {job.job_id for job in stuck} == {job.job_id for job in old}
    assert stuck[0].job_id == old[-1].job_id  # oldest first
    assert len(store.stuck_pending(older_than=T0 - timedelta(minutes=5), limit=2)) == 2
    target = old[0]
    assert store.mark_republished(target.job_id, expected_pending_since=target.pending_since, pending_since=T0)  # type: ignore[arg-type]
    # Only one republisher wins a given marker.
    assert not store.mark_republished(target.job_id, expected_pending_since=target.pending_since, pending_since=T0)  # type: ignore[arg-type]
    assert target.job_id not in {
        job.job_id for job in store.stuck_pending(older_than=T0 - timedelta(minutes=5), limit=100)
    }
    assert not store.mark_republished(claimed.job_id, expected_pending_since=claimed.pending_since, pending_since=T0)  # type: ignore[arg-type]


def test_get_many_reads_jobs_consistently_in_one_request(store: DynamoDbJobStore) -> None:
    pending, canceled = make_job(), make_job()
    for job in (pending, canceled):
        store.create(job)
    assert store.cancel(canceled.job_id, now=T0 + timedelta(seconds=1)) is not None
    before = aws_calls.snapshot().get("other", {}).get("dynamodb.BatchGetItem", 0)
    found = store.get_many([pending.job_id, canceled.job_id, "no-such-job", pending.job_id])
    assert aws_calls.snapshot()["other"]["dynamodb.BatchGetItem"] - before == 1
    assert found == {pending.job_id: pending, canceled.job_id: store.get(canceled.job_id), "no-such-job": None}
    assert found[canceled.job_id] is not None and found[canceled.job_id].status is JobStatus.CANCELED  # type: ignore[union-attr]
    assert store.get_many([]) == {}
    with pytest.raises(ValueError, match="at most 100 jobs"):
        store.get_many([f"job-{n}" for n in range(101)])
    with pytest.raises(JobStoreUnavailable):
        DynamoDbJobStore(dead_client("dynamodb"), "jobs").get_many(["x"])


class _Throttled:
    """The moto client, except that its BatchGetItem answers only the first key of each request and hands the rest
    back as UnprocessedKeys (as DynamoDB does when it throttles) for the first `throttled` requests."""

    def __init__(self, client: Any, throttled: int) -> None:
        self._client, self.throttled, self.requests = client, throttled, 0

    def batch_get_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        if self.requests > self.throttled or len(keys) == 1:
            answer: dict[str, Any] = self._client.batch_get_item(RequestItems=RequestItems)
            return answer
        first = self._client.batch_get_item(RequestItems={table: {**request, "Keys": keys[:1]}})
        return {**first, "UnprocessedKeys": {table: {**request, "Keys": keys[1:]}}}


@pytest.mark.parametrize("throttled", [1, 5])
def test_get_many_asks_for_unprocessed_keys_again_a_bounded_number_of_times(
    store: DynamoDbJobStore, moto_server: str, table: str, throttled: int
) -> None:
    jobs = [make_job() for _ in range(4)]
    for job in jobs:
        store.create(job)
    client = _Throttled(counted_client("dynamodb", moto_server), throttled)
    found = DynamoDbJobStore(client, table).get_many([job.job_id for job in jobs])  # type: ignore[arg-type]
    if throttled == 1:
        # The second request got all that were left.
        assert client.requests == 2 and found == {job.job_id: job for job in jobs}
    else:
        # Three requests at most, one key answered by each: the fourth job is left unanswered (absent, not None).
        assert client.requests == 3 and found == {job.job_id: job for job in jobs[:3]}


def test_advance_key_generation_is_conditional(store: DynamoDbJobStore) -> None:
    head = make_job(idempotency_key="anonymous#gen")
    store.create(head)
    keep = int(T0.timestamp()) + 40 * 86_400
    assert store.advance_key_generation(head.job_id, expected=0, new=1, keep_until=keep)
    assert not store.advance_key_generation(head.job_id, expected=0, new=1, keep_until=keep)
    assert store.advance_key_generation(head.job_id, expected=1, new=2, keep_until=keep + 1)
    current = store.get(head.job_id)
    assert current is not None and current.key_generation == 2 and current.expires_at == keep + 1
    assert not store.advance_key_generation("no-such-job", expected=0, new=1, keep_until=keep)
    assert store.get("no-such-job") is None


def test_find_by_idempotency_key(store: DynamoDbJobStore) -> None:
    key = f"anonymous#{unique('key')}"
    jobs = [make_job(idempotency_key=key) for _ in range(2)]
    for job in jobs:
        store.create(job)
    store.create(make_job())
    assert sorted(store.find_by_idempotency_key(key)) == sorted(job.job_id for job in jobs)
    assert list(store.find_by_idempotency_key("anonymous#nothing")) == []


def test_ping(store: DynamoDbJobStore, moto_server: str) -> None:
    store.ping()
    with pytest.raises(JobStoreUnavailable):
        DynamoDbJobStore(counted_client("dynamodb", moto_server), "no-such-table").ping()


def test_unreachable_store_raises_unavailable() -> None:
    dead = DynamoDbJobStore(dead_client("dynamodb"), "jobs")
    with pytest.raises(JobStoreUnavailable):
        dead.create(make_job())
    with pytest.raises(JobStoreUnavailable):
        dead.get("x")
