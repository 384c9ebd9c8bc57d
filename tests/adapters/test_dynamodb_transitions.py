"""Every conditional write of DynamoDbJobStore accepts exactly the prior states the domain's state machine
(runtime.domain.job.ALLOWED_TRANSITIONS) allows and rejects all others, checked against the moto server over
HTTP: an item is seeded in each status, the write is tried, and the stored item shows what happened."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runtime.adapters.dynamodb.schema import Attr
from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.domain.job import Job, JobError, JobStatus, Priority, Progress, can_transition, prior_statuses
from runtime.domain.ports import LeaseState
from tests.adapters.resources import counted_client, create_jobs_table, raw_client, unique

T0 = datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
ATTEMPT = 1  # the attempt number every seeded job carries
EXPIRED_LEASE = T0 - timedelta(seconds=1)
LIVE_LEASE = T0 + timedelta(minutes=5)
ERROR = JobError("dead_lettered", "received 3 times")
PROGRESS = Progress(0.5, "half way", T0)
TENANT = "tenant-t"


def owned(target: JobStatus) -> frozenset[JobStatus]:
    """A worker's own write to `target` is accepted only from PROCESSING (under its attempt), if allowed."""
    return frozenset({JobStatus.PROCESSING}) if can_transition(JobStatus.PROCESSING, target) else frozenset()


@dataclass(frozen=True)
class Write:
    name: str
    # The status of an item the write was accepted on (None: the status does not change).
    target: JobStatus | None
    # What the domain's state machine allows this write to start from.
    accepts: frozenset[JobStatus]
    call: Callable[[DynamoDbJobStore, str], bool]
    # A worker's write about its own attempt (conditioned on it) rather than one taking the job from anyone.
    owner: bool = False
    # The write needs the job's cancel requested (seeded so; test_finish_canceled_needs_a_cancel_request).
    cancel_requested: bool = False


def worker_write(name: str, target: JobStatus, call: Callable[[DynamoDbJobStore, str], bool], **flags: bool) -> Write:
    """A worker's write about its own attempt, moving its job to `target`."""
    return Write(name, target, owned(target), call, owner=True, **flags)


def takeover_write(name: str, target: JobStatus, call: Callable[[DynamoDbJobStore, str], bool]) -> Write:
    """A write moving the job to `target` from whatever the state machine allows, whoever holds it."""
    return Write(name, target, frozenset(prior_statuses(target)), call)


WRITES = [
    Write(
        "create",
        JobStatus.PENDING,
        frozenset(),  # only where no job exists yet (checked below)
        lambda store, job_id: store.create(seeded(job_id, JobStatus.PENDING)).created,
    ),
    takeover_write(
        "claim",
        JobStatus.PROCESSING,
        lambda store, job_id: store.claim(job_id, now=T0, lease_until=T0 + timedelta(minutes=1)).claimed,
    ),
    Write(
        "extend_lease",
        None,
        owned(JobStatus.PROCESSING),
        lambda store, job_id: (
            store.extend_lease(job_id, attempt=ATTEMPT, lease_until=LIVE_LEASE) is not LeaseState.LOST
        ),
        owner=True,
    ),
    Write(
        "release",
        None,
        owned(JobStatus.PROCESSING),
        lambda store, job_id: store.release(job_id, attempt=ATTEMPT, now=T0),
        owner=True,
    ),
    Write(
        "set_progress",
        None,
        owned(JobStatus.PROCESSING),
        lambda store, job_id: store.set_progress(job_id, attempt=ATTEMPT, progress=PROGRESS, now=T0),
        owner=True,
    ),
    worker_write(
        "succeed",
        JobStatus.SUCCEEDED,
        lambda store, job_id: store.succeed(job_id, attempt=ATTEMPT, result={"ok": True}, now=T0),
    ),
    worker_write(
        "fail",
        JobStatus.FAILED,
        lambda store, job_id: store.fail(job_id, attempt=ATTEMPT, error=ERROR, final=False, now=T0),
    ),
    worker_write(
        "fail(final)",
        JobStatus.FAILED_FINAL,
        lambda store, job_id: store.fail(job_id, attempt=ATTEMPT, error=ERROR, final=True, now=T0),
    ),
    takeover_write(
        "fail_final",
        JobStatus.FAILED_FINAL,
        lambda store, job_id: store.fail_final(job_id, error=ERROR, now=T0) is not None,
    ),
    takeover_write("requeue", JobStatus.PENDING, lambda store, job_id: store.requeue(job_id, now=T0) is not None),
    # A cancel at once takes only what no worker holds; a PROCESSING job gets the flag and its worker decides.
    Write(
        "cancel",
        JobStatus.CANCELED,
        frozenset(prior_statuses(JobStatus.CANCELED)) - {JobStatus.PROCESSING},
        lambda store, job_id: store.cancel(job_id, now=T0) is not None,
    ),
    Write(
        "request_cancel",
        None,
        owned(JobStatus.CANCELED),
        lambda store, job_id: store.request_cancel(job_id, now=T0) is not None,
    ),
    worker_write(
        "finish_canceled",
        JobStatus.CANCELED,
        lambda store, job_id: store.finish_canceled(job_id, attempt=ATTEMPT, now=T0),
        cancel_requested=True,
    ),
    # Not a status change: it moves the republish marker of a job that is still PENDING.
    Write(
        "mark_republished",
        None,
        frozenset({JobStatus.PENDING}),
        lambda store, job_id: store.mark_republished(job_id, expected_pending_since=T0, pending_since=T0),
    ),
]


def seeded(job_id: str, status: JobStatus, *, lease: datetime = EXPIRED_LEASE, cancel_requested: bool = False) -> Job:
    """A job in `status` that satisfies every other part of each condition: claimed by ATTEMPT, its lease
    expired (unless `lease` says otherwise), its republish marker at T0."""
    return Job(
        job_id=job_id,
        status=status,
        job_type="process_document",
        priority=Priority.NORMAL,
        params={"n": 1},
        metadata={},
        created_at=T0,
        updated_at=T0,
        trace_id="1-67c2f6c0-0123456789abcdef01234567",
        fingerprint="f" * 64,
        tenant=TENANT,
        attempts=ATTEMPT,
        transitions={status.value: T0},
        lease_expires_at=lease,
        pending_since=T0,
        cancel_requested=cancel_requested,
    )


@dataclass(frozen=True)
class Table:
    name: str
    client: Any

    def item(self, job_id: str) -> dict[str, Any]:
        item: dict[str, Any] = self.client.get_item(
            TableName=self.name, Key={Attr.JOB_ID: {"S": job_id}}, ConsistentRead=True
        )["Item"]
        return item


@pytest.fixture(scope="module")
def table(moto_server: str) -> Table:
    name = unique("transitions-jobs")
    create_jobs_table(moto_server, name)
    return Table(name, raw_client("dynamodb", moto_server))


@pytest.fixture(scope="module")
def store(moto_server: str, table: Table) -> Iterator[DynamoDbJobStore]:
    yield DynamoDbJobStore(counted_client("dynamodb", moto_server), table.name)


@pytest.mark.parametrize("status", list(JobStatus), ids=str)
@pytest.mark.parametrize("write", WRITES, ids=lambda write: write.name)
def test_each_write_accepts_exactly_the_allowed_prior_states(
    store: DynamoDbJobStore, table: Table, write: Write, status: JobStatus
) -> None:
    job = seeded(unique("job"), status, cancel_requested=write.cancel_requested)
    assert store.create(job).created
    accepted = write.call(store, job.job_id)
    after = store.get(job.job_id)
    assert after is not None
    assert accepted == (status in write.accepts), f"{write.name} from {status}"
    if not accepted:
        assert after == job  # a rejected write changes nothing
    else:
        assert after.status == (write.target or status)
    # The status listing index's key follows every status change, in the same write.
    assert table.item(job.job_id)[Attr.TENANT_STATUS] == {"S": f"{TENANT}#{after.status}"}


@pytest.mark.parametrize(
    "write",
    [write for write in WRITES if write.target is not None and write.name != "create"],
    ids=lambda write: write.name,
)
def test_status_writes_still_work_on_items_from_before_the_listing_indexes(
    store: DynamoDbJobStore, table: Table, write: Write
) -> None:
    # Such an item has no tenant attributes, no statusKeys and no createdKey: no listing index holds it, before
    # or after (the key it gets belongs to no tenant, and the sort key stays missing).
    status = next(iter(write.accepts))
    job = seeded(unique("legacy"), status, cancel_requested=write.cancel_requested).replace(tenant="")
    assert store.create(job).created
    assert write.call(store, job.job_id)
    item = table.item(job.job_id)
    assert item[Attr.TENANT_STATUS] == {"S": f"#{write.target}"}
    assert Attr.CREATED_KEY not in item and Attr.STATUS_KEYS not in item


@pytest.mark.parametrize("write", WRITES, ids=lambda write: write.name)
def test_each_write_on_a_missing_job(store: DynamoDbJobStore, write: Write) -> None:
    job_id = unique("missing")
    # Only create starts from "no job"; every other write needs one and creates nothing.
    assert write.call(store, job_id) == (write.name == "create")
    assert (store.get(job_id) is not None) == (write.name == "create")


# Writes that may take a PROCESSING job (change its status) from whoever holds it: only once its lease expired.
TAKEOVERS = [
    write for write in WRITES if JobStatus.PROCESSING in write.accepts and not write.owner and write.target is not None
]


def test_the_takeovers_are_the_claim_and_the_dead_letter_verdict() -> None:
    assert [write.name for write in TAKEOVERS] == ["claim", "fail_final"]


@pytest.mark.parametrize("write", TAKEOVERS, ids=lambda write: write.name)
def test_a_live_lease_keeps_a_processing_job_from_other_writers(store: DynamoDbJobStore, write: Write) -> None:
    job = seeded(unique("leased"), JobStatus.PROCESSING, lease=LIVE_LEASE)
    store.create(job)
    assert not write.call(store, job.job_id)
    assert store.get(job.job_id) == job


@pytest.mark.parametrize("write", [write for write in WRITES if write.owner], ids=lambda write: write.name)
def test_a_worker_write_needs_the_workers_attempt(store: DynamoDbJobStore, write: Write) -> None:
    job = seeded(unique("other-attempt"), JobStatus.PROCESSING, cancel_requested=write.cancel_requested).replace(
        attempts=ATTEMPT + 1
    )
    store.create(job)
    assert not write.call(store, job.job_id)
    assert store.get(job.job_id) == job


def test_finish_canceled_needs_a_cancel_request(store: DynamoDbJobStore) -> None:
    job = seeded(unique("not-requested"), JobStatus.PROCESSING)
    store.create(job)
    assert not store.finish_canceled(job.job_id, attempt=ATTEMPT, now=T0)
    assert store.get(job.job_id) == job


def test_the_lease_renewal_reads_the_cancel_request_back(store: DynamoDbJobStore) -> None:
    job = seeded(unique("renewed"), JobStatus.PROCESSING)
    store.create(job)
    assert store.extend_lease(job.job_id, attempt=ATTEMPT, lease_until=LIVE_LEASE) is LeaseState.HELD
    requested = store.request_cancel(job.job_id, now=T0)
    assert requested is not None and requested.cancel_requested and requested.status is JobStatus.PROCESSING
    assert store.extend_lease(job.job_id, attempt=ATTEMPT, lease_until=LIVE_LEASE) is LeaseState.CANCEL_REQUESTED
    assert store.finish_canceled(job.job_id, attempt=ATTEMPT, now=T0)
    after = store.get(job.job_id)
    assert after is not None and after.status is JobStatus.CANCELED and after.lease_expires_at is None
    assert store.extend_lease(job.job_id, attempt=ATTEMPT, lease_until=LIVE_LEASE) is LeaseState.LOST


def test_a_retry_of_a_canceled_job_clears_its_cancel_request(store: DynamoDbJobStore) -> None:
    job = seeded(unique("retried"), JobStatus.CANCELED, cancel_requested=True)
    store.create(job)
    requeued = store.requeue(job.job_id, now=T0)
    assert requeued is not None and requeued.status is JobStatus.PENDING and not requeued.cancel_requested
    assert requeued.pending_since == T0


def test_a_cancel_removes_the_pending_marker(store: DynamoDbJobStore) -> None:
    job = seeded(unique("canceled"), JobStatus.PENDING)
    store.create(job)
    canceled = store.cancel(job.job_id, now=T0)
    assert canceled is not None and canceled.status is JobStatus.CANCELED
    assert canceled.pending_since is None and canceled.transitions[JobStatus.CANCELED.value] == T0
    # The republisher's sweep no longer sees it.
    assert job.job_id not in {
        stuck.job_id for stuck in store.stuck_pending(older_than=T0 + timedelta(days=1), limit=1000)
    }


def test_progress_lands_while_the_attempt_holds_the_job_and_goes_with_its_outcome(store: DynamoDbJobStore) -> None:
    job = seeded(unique("progress"), JobStatus.PROCESSING, lease=LIVE_LEASE)
    store.create(job)
    assert store.set_progress(job.job_id, attempt=ATTEMPT, progress=PROGRESS, now=T0 + timedelta(seconds=1))
    running = store.get(job.job_id)
    assert running is not None and running.progress == PROGRESS and running.status is JobStatus.PROCESSING
    assert running.updated_at == T0 + timedelta(seconds=1) and running.lease_expires_at == LIVE_LEASE
    last = Progress(1.0, None, T0 + timedelta(seconds=2))
    assert store.succeed(job.job_id, attempt=ATTEMPT, result={"ok": True}, now=T0, progress=last)
    done = store.get(job.job_id)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.progress == last
    # The job is no longer PROCESSING under the attempt: a late write is refused and changes nothing.
    assert not store.set_progress(job.job_id, attempt=ATTEMPT, progress=PROGRESS, now=T0)
    assert store.get(job.job_id) == done


@pytest.mark.parametrize("outcome", ["fail", "finish_canceled"])
def test_the_other_outcomes_carry_the_last_progress_too(store: DynamoDbJobStore, outcome: str) -> None:
    job = seeded(unique("progress-end"), JobStatus.PROCESSING, cancel_requested=True)
    store.create(job)
    if outcome == "fail":
        assert store.fail(job.job_id, attempt=ATTEMPT, error=ERROR, final=False, now=T0, progress=PROGRESS)
    else:
        assert store.finish_canceled(job.job_id, attempt=ATTEMPT, now=T0, progress=PROGRESS)
    after = store.get(job.job_id)
    assert after is not None and after.progress == PROGRESS


def test_a_new_claim_starts_without_the_last_attempts_progress(store: DynamoDbJobStore) -> None:
    job = seeded(unique("progress-retry"), JobStatus.FAILED).replace(progress=PROGRESS)
    store.create(job)
    claimed = store.claim(job.job_id, now=T0, lease_until=LIVE_LEASE)
    assert claimed.claimed and claimed.job is not None and claimed.job.progress is None


def test_a_release_hands_the_attempt_back_and_ends_the_lease_so_the_next_claim_takes_the_job_at_once(
    store: DynamoDbJobStore,
) -> None:
    job = seeded(unique("released"), JobStatus.PROCESSING, lease=LIVE_LEASE)
    store.create(job)
    assert store.release(job.job_id, attempt=ATTEMPT, now=T0)
    released = store.get(job.job_id)
    assert released is not None and released.status is JobStatus.PROCESSING
    assert released.attempts == ATTEMPT - 1 and released.lease_expires_at is not None
    assert released.lease_expires_at.timestamp() == 0
    # A second release by the same (now stale) attempt number: the job is no longer PROCESSING under it.
    assert not store.release(job.job_id, attempt=ATTEMPT, now=T0)
    # Long before the old lease would have ended, the next claim takes it, as the same attempt number.
    claimed = store.claim(job.job_id, now=T0, lease_until=T0 + timedelta(minutes=1))
    assert claimed.claimed and claimed.job is not None and claimed.job.attempts == ATTEMPT
