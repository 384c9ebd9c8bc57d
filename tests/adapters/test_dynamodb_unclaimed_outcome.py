"""The outcome write of an attempt run unclaimed (runtime/domain/lazy_claim.py) on moto: one conditional update that
leaves the item as a claim and an outcome would have, and is refused whenever the job is no longer the PENDING job
the attempt started from."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from runtime.adapters.dynamodb.codec import key, pending_shard
from runtime.adapters.dynamodb.schema import Attr
from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.domain.callbacks import Callback
from runtime.domain.job import JobError, JobStatus, Progress, ResultRef
from runtime.observability import aws_calls
from tests.adapters.resources import counted_client, create_jobs_table, raw_client, unique
from tests.adapters.test_dynamodb_store import T0, make_job

STARTED, ENDED = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
# What differs between the two ways of the same life: the key and what derives from it, and the status left.
_DIFFERING = {Attr.JOB_ID, Attr.CREATED_KEY, Attr.CALLBACK_SHARD, Attr.PREVIOUS_STATUS}


@pytest.fixture(scope="module")
def table(moto_server: str) -> Iterator[str]:
    name = unique("unclaimed-jobs")
    create_jobs_table(moto_server, name)
    yield name


@pytest.fixture
def store(moto_server: str, table: str) -> DynamoDbJobStore:
    return DynamoDbJobStore(counted_client("dynamodb", moto_server), table)


def _item(moto_server: str, table: str, job_id: str) -> dict[str, Any]:
    item: dict[str, Any] = raw_client("dynamodb", moto_server).get_item(
        TableName=table, Key=key(job_id), ConsistentRead=True
    )["Item"]
    return item


def _pair(store: DynamoDbJobStore, **changes: Any) -> tuple[str, str]:
    """Two identical PENDING jobs (ids apart): one for each way."""
    ids = unique("eager"), unique("lazy")
    for job_id in ids:
        assert store.create(make_job(job_id, tenant="acme", callback=Callback(url="https://h.example/cb"), **changes))
    return ids


Outcome = tuple[str, dict[str, Any]]
OUTCOMES: list[Outcome] = [
    ("succeed", {"result": {"words": 3}}),
    ("succeed", {"result": None, "result_ref": ResultRef(uri="s3://b/tenants/acme/r.json", size=9, sha256="0" * 64)}),
    ("fail", {"error": JobError("timeout", "try again"), "final": False}),
    ("fail", {"error": JobError("bad", "never", permanent=True), "final": True}),
]


@pytest.mark.parametrize(("write", "kwargs"), OUTCOMES, ids=["result", "result_ref", "retryable", "final"])
@pytest.mark.parametrize("with_progress", [True, False], ids=["progress", "no_progress"])
def test_the_unclaimed_outcome_leaves_the_item_a_claim_and_an_outcome_would(
    store: DynamoDbJobStore, moto_server: str, table: str, write: str, kwargs: dict[str, Any], with_progress: bool
) -> None:
    eager, lazy = _pair(store)
    progress = Progress(fraction=0.5, message="half", updated_at=STARTED) if with_progress else None
    common = {"attempt": 1, "now": ENDED, "progress": progress, "callback_due": True, **kwargs}
    assert store.claim(eager, now=STARTED, lease_until=STARTED + timedelta(seconds=60)).claimed
    assert getattr(store, write)(eager, **common)
    before = aws_calls.snapshot().get("other", {}).get("dynamodb.UpdateItem", 0)
    assert getattr(store, write)(lazy, started_at=STARTED, **common)
    assert aws_calls.snapshot()["other"]["dynamodb.UpdateItem"] - before == 1  # one write for the whole attempt

    claimed_then_ended, ended = _item(moto_server, table, eager), _item(moto_server, table, lazy)
    assert {k: v for k, v in ended.items() if k not in _DIFFERING} == {
        k: v for k, v in claimed_then_ended.items() if k not in _DIFFERING
    }
    assert ended[Attr.PREVIOUS_STATUS] == {"S": "PENDING"}
    assert claimed_then_ended[Attr.PREVIOUS_STATUS] == {"S": "PROCESSING"}
    if Attr.CALLBACK_SHARD in claimed_then_ended:  # terminal: the job entered the callback outbox in the write
        assert ended[Attr.CALLBACK_SHARD] == {"S": pending_shard(lazy)}
    else:
        assert Attr.CALLBACK_SHARD not in ended
    job = store.get(lazy)
    assert job is not None and job.attempts == 1 and job.pending_since is None and job.lease_expires_at is None
    assert job.transitions[JobStatus.PROCESSING.value] == STARTED and job.progress == progress


def _refused(store: DynamoDbJobStore, job_id: str, *, attempt: int = 1, now: datetime = ENDED) -> None:
    before = store.get(job_id)
    assert not store.succeed(job_id, attempt=attempt, result={"x": 1}, now=now, started_at=STARTED)
    assert not store.fail(job_id, attempt=attempt, error=JobError("e", "m"), final=False, now=now, started_at=STARTED)
    assert store.get(job_id) == before  # never overwritten


def test_the_unclaimed_outcome_is_refused_once_the_job_moved_on(store: DynamoDbJobStore) -> None:
    canceled, claimed, done, retried = (unique(name) for name in ("canceled", "claimed", "done", "retried"))
    for job_id in (canceled, claimed, done, retried):
        assert store.create(make_job(job_id)).created
    assert store.cancel(canceled, now=T0) is not None
    _refused(store, canceled)
    # Another worker claimed it (past its threshold, or a redelivery): its lease decides.
    assert store.claim(claimed, now=T0, lease_until=T0 + timedelta(seconds=60)).claimed
    _refused(store, claimed)
    _refused(store, claimed, attempt=2)
    # A duplicate delivery's other run finished first.
    assert store.succeed(done, attempt=1, result={"first": True}, now=ENDED, started_at=STARTED)
    _refused(store, done)
    # The attempt number is checked too: a PENDING job with other attempts is not the one the attempt started from.
    assert store.fail(retried, attempt=1, error=JobError("e", "m"), final=True, now=T0, started_at=T0)
    assert store.requeue(retried, now=T0) is not None
    _refused(store, retried)
    assert store.succeed(retried, attempt=2, result={"ok": 1}, now=ENDED, started_at=STARTED)


def test_the_unclaimed_outcome_of_a_scheduled_job_is_refused_before_its_run_at(store: DynamoDbJobStore) -> None:
    job_id = unique("scheduled")
    assert store.create(make_job(job_id, run_at=ENDED + timedelta(seconds=30))).created
    _refused(store, job_id)
    assert store.succeed(job_id, attempt=1, result={"ok": 1}, now=ENDED + timedelta(seconds=30), started_at=ENDED)
