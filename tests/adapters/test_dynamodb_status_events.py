"""The store's status-change marker on moto, read back from the table's stream: every status change carries it
(with the status it left), every other update removes it, so the status events pipe's filter and input template
(taken from stacks/components/status_events.py) turn exactly the status changes into the contract's events."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from moto.events.models import EventPattern

from runtime.adapters.dynamodb.codec import key
from runtime.adapters.dynamodb.schema import STATUS_CHANGE_MARKER, Attr
from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.domain.job import JobError, JobStatus, Progress
from runtime.domain.ports import LeaseState
from runtime.domain.times import iso
from stacks.components.status_events import detail_template, status_change_filter
from tests.adapters.resources import counted_client, create_jobs_table, raw_client, unique
from tests.adapters.test_dynamodb_store import T0, make_job

P, F, S, C = JobStatus.PROCESSING, JobStatus.FAILED, JobStatus.SUCCEEDED, JobStatus.CANCELED


@pytest.fixture(scope="module")
def table(isolated_moto_server: str) -> Iterator[str]:
    # The dev environment's table: the local one has no stream (no status events on the emulator).
    name = unique("status-events")
    create_jobs_table(isolated_moto_server, name, env_name="dev")
    yield name


@pytest.fixture
def store(isolated_moto_server: str, table: str) -> DynamoDbJobStore:
    return DynamoDbJobStore(counted_client("dynamodb", isolated_moto_server), table)


def _item(endpoint: str, table: str, job_id: str) -> dict[str, Any]:
    item: dict[str, Any] = raw_client("dynamodb", endpoint).get_item(
        TableName=table, Key=key(job_id), ConsistentRead=True
    )["Item"]
    return item


def _stream_records(endpoint: str, table: str, job_id: str) -> list[dict[str, Any]]:
    """The table's stream records of one job, oldest first, as JSON (what a pipe's filter sees)."""
    stream_arn = raw_client("dynamodb", endpoint).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = raw_client("dynamodbstreams", endpoint)
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records.extend(streams.get_records(ShardIterator=iterator, Limit=1000)["Records"])
    return [
        json.loads(json.dumps(record, default=str))
        for record in records
        if record["dynamodb"]["Keys"][Attr.JOB_ID]["S"] == job_id
    ]


def _detail(record: dict[str, Any]) -> dict[str, Any]:
    """What the pipe's input template makes of a record (its placeholders are string paths of the new image)."""
    image = record["dynamodb"]["NewImage"]
    rendered = re.sub(r"<\$\.dynamodb\.NewImage\.(\w+)\.S>", lambda m: image[m[1]]["S"], detail_template())
    detail: dict[str, Any] = json.loads(rendered)
    return detail


def _published(endpoint: str, table: str, job_id: str) -> list[dict[str, Any]]:
    pattern = EventPattern(None, status_change_filter())
    return [_detail(r) for r in _stream_records(endpoint, table, job_id) if pattern.matches_event(r)]


def _at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_status_changes_are_published_and_nothing_else(
    store: DynamoDbJobStore, isolated_moto_server: str, table: str
) -> None:
    job = make_job(tenant="acme")
    job_id = job.job_id
    assert store.create(job).created  # an INSERT: a job starts PENDING, no change

    def claim(seconds: int) -> None:
        assert store.claim(job_id, now=_at(seconds), lease_until=_at(seconds + 60)).claimed

    claim(1)
    progress = Progress(fraction=0.5, message="half", updated_at=_at(1))
    assert store.set_progress(job_id, attempt=1, progress=progress, now=_at(1))  # progress: not a change
    assert store.extend_lease(job_id, attempt=1, lease_until=_at(90)) is LeaseState.HELD  # heartbeat: neither
    assert store.request_cancel(job_id, now=_at(2)) is not None  # a flag: not a change
    assert store.finish_canceled(job_id, attempt=1, now=_at(3))
    assert store.requeue(job_id, now=_at(4)) is not None  # manual retry
    # The republisher: not a change.
    assert store.mark_republished(job_id, expected_pending_since=_at(4), pending_since=_at(5))
    claim(6)
    assert store.fail(job_id, attempt=2, error=JobError("timeout", "x"), final=False, now=_at(7))
    claim(8)
    assert store.extend_lease(job_id, attempt=3, lease_until=_at(120)) is LeaseState.HELD
    assert store.succeed(job_id, attempt=3, result={"ok": True}, now=_at(9))

    published = _published(isolated_moto_server, table, job_id)
    base = {"jobId": job_id, "tenant": "acme", "jobType": job.job_type}
    assert published == [
        {**base, "status": to.value, "previousStatus": was.value, "at": iso(_at(seconds))}
        for was, to, seconds in (
            (JobStatus.PENDING, P, 1),
            (P, C, 3),
            (C, JobStatus.PENDING, 4),
            (JobStatus.PENDING, P, 6),
            (P, F, 7),
            (F, P, 8),
            (P, S, 9),
        )
    ]


def test_an_attempt_run_unclaimed_is_one_status_change_from_pending(
    store: DynamoDbJobStore, isolated_moto_server: str, table: str
) -> None:
    # The same kind of life as above, its first attempts run unclaimed (runtime/domain/lazy_claim.py): a quick
    # attempt's outcome is one event from PENDING (no PROCESSING event: nobody could see it), a redelivered attempt
    # is claimed first as ever, and a quick job is one event in all.
    job = make_job(tenant="acme")
    job_id = job.job_id
    assert store.create(job).created
    assert store.fail(job_id, attempt=1, error=JobError("timeout", "x"), final=False, now=_at(2), started_at=_at(1))
    assert store.claim(job_id, now=_at(3), lease_until=_at(63)).claimed
    assert store.extend_lease(job_id, attempt=2, lease_until=_at(90)) is LeaseState.HELD
    assert store.succeed(job_id, attempt=2, result={"ok": True}, now=_at(4))
    quick = make_job(tenant="acme")
    assert store.create(quick).created
    assert store.succeed(quick.job_id, attempt=1, result={"ok": True}, now=_at(6), started_at=_at(5))

    def expected(job_id: str, changes: tuple[tuple[JobStatus, JobStatus, int], ...]) -> list[dict[str, Any]]:
        base = {"jobId": job_id, "tenant": "acme", "jobType": job.job_type}
        return [
            {**base, "status": to.value, "previousStatus": was.value, "at": iso(_at(seconds))}
            for was, to, seconds in changes
        ]

    assert _published(isolated_moto_server, table, job_id) == expected(
        job_id, ((JobStatus.PENDING, F, 2), (F, P, 3), (P, S, 4))
    )
    assert _published(isolated_moto_server, table, quick.job_id) == expected(quick.job_id, ((JobStatus.PENDING, S, 6),))


def test_the_marker_is_set_by_a_status_change_and_removed_by_any_other_update(
    store: DynamoDbJobStore, isolated_moto_server: str, table: str
) -> None:
    job = make_job(tenant="acme")
    store.create(job)
    assert not set(STATUS_CHANGE_MARKER) & set(_item(isolated_moto_server, table, job.job_id))
    assert store.claim(job.job_id, now=T0, lease_until=_at(60)).claimed
    item = _item(isolated_moto_server, table, job.job_id)
    assert item[Attr.PREVIOUS_STATUS] == {"S": "PENDING"} and item[Attr.STATUS_CHANGED_AT] == {"S": iso(T0)}
    store.extend_lease(job.job_id, attempt=1, lease_until=_at(90))
    assert not set(STATUS_CHANGE_MARKER) & set(_item(isolated_moto_server, table, job.job_id))

    # The key generation's update, on a job that just changed status.
    assert store.fail(job.job_id, attempt=1, error=JobError("timeout", "x"), final=True, now=_at(1))
    assert _item(isolated_moto_server, table, job.job_id)[Attr.PREVIOUS_STATUS] == {"S": "PROCESSING"}
    assert store.advance_key_generation(job.job_id, expected=0, new=1, keep_until=1)
    item = _item(isolated_moto_server, table, job.job_id)
    assert not set(STATUS_CHANGE_MARKER) & set(item) and item[Attr.STATUS] == {"S": "FAILED_FINAL"}


def test_without_status_marker_joins_an_existing_remove_clause() -> None:
    from runtime.adapters.dynamodb.store import without_status_marker

    assert without_status_marker("SET a = :a") == "SET a = :a REMOVE previousStatus, statusChangedAt"
    assert without_status_marker("SET a = :a REMOVE b") == "SET a = :a REMOVE previousStatus, statusChangedAt, b"
