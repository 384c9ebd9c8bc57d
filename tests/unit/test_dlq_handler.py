"""The DLQ Lambda handler with a fake store: FAILED_FINAL only from non-terminal states, errors reported."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from runtime.dlq_handler import DeadLetterHandler, handle_event
from runtime.domain.job import JobStatus
from runtime.domain.ports import JobStoreUnavailable
from tests.unit.fakes import FakeClock, InMemoryJobStore, make_job


def sqs_record(message_id: str, body: str, receive_count: int = 4) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1767268800000",
            "SenderId": "AIDA",
            "ApproximateFirstReceiveTimestamp": "1767268800000",
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs-dlq",
        "awsRegion": "us-east-1",
    }


def job_body(job_id: str) -> str:
    return json.dumps({"jobId": job_id, "traceId": f"trace-{job_id}"})


def run(store: InMemoryJobStore, *records: dict[str, Any]) -> dict[str, Any]:
    return handle_event({"Records": list(records)}, None, dead_letters=DeadLetterHandler(store, FakeClock()))


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.FAILED])
def test_non_terminal_job_becomes_failed_final_with_the_reason(status: JobStatus) -> None:
    store = InMemoryJobStore()
    store.create(make_job(status=status, attempts=2))
    response = run(store, sqs_record("m1", job_body("job-1"), receive_count=4))
    job = store.jobs["job-1"]
    assert response == {"batchItemFailures": []}
    assert job.status is JobStatus.FAILED_FINAL and job.attempts == 2
    assert job.error is not None and job.error.code == "dead_lettered" and job.error.permanent
    assert "4 receives" in job.error.message


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED_FINAL])
def test_terminal_job_is_left_alone(status: JobStatus) -> None:
    store = InMemoryJobStore()
    store.create(make_job(status=status, attempts=1, result={"ok": True} if status is JobStatus.SUCCEEDED else None))
    before = store.jobs["job-1"]
    assert run(store, sqs_record("m1", job_body("job-1"))) == {"batchItemFailures": []}
    assert store.jobs["job-1"] == before


def test_poison_and_unknown_jobs_are_handled_without_failing_the_batch() -> None:
    store = InMemoryJobStore()
    response = run(
        store, sqs_record("m1", "not json"), sqs_record("m2", '{"foo": 1}'), sqs_record("m3", job_body("gone"))
    )
    assert response == {"batchItemFailures": []}
    assert store.jobs == {}


def test_store_errors_are_batch_item_failures_never_swallowed(capsys: pytest.CaptureFixture[str]) -> None:
    store = InMemoryJobStore()
    store.create(make_job())
    store.unavailable = True
    assert run(store, sqs_record("m1", job_body("job-1"))) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert "dlq_record_failed" in capsys.readouterr().out
    store.unavailable = False
    assert store.jobs["job-1"].status is JobStatus.PENDING


def test_one_failing_record_does_not_fail_the_others() -> None:
    store = InMemoryJobStore()
    store.create(make_job("job-1"))
    store.create(make_job("job-2"))
    original = store.fail_final

    def flaky(job_id: str, **kwargs: Any) -> Any:
        if job_id == "job-2":
            raise JobStoreUnavailable("throttled")
        return original(job_id, **kwargs)

    store.fail_final = flaky  # type: ignore[method-assign]
    response = run(store, sqs_record("m1", job_body("job-1")), sqs_record("m2", job_body("job-2")))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert store.jobs["job-1"].status is JobStatus.FAILED_FINAL and store.jobs["job-2"].status is JobStatus.PENDING


def test_processing_job_under_a_live_lease_is_left_to_its_worker_and_the_record_retried() -> None:
    store = InMemoryJobStore()
    now = FakeClock().now()
    store.create(make_job(status=JobStatus.PROCESSING, attempts=1, lease_expires_at=now + timedelta(seconds=30)))
    before = store.jobs["job-1"]
    response = run(store, sqs_record("m1", job_body("job-1")))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert store.jobs["job-1"] == before


def test_processing_job_whose_lease_expired_becomes_failed_final() -> None:
    store = InMemoryJobStore()
    now = FakeClock().now()
    store.create(make_job(status=JobStatus.PROCESSING, attempts=3, lease_expires_at=now - timedelta(seconds=1)))
    assert run(store, sqs_record("m1", job_body("job-1"))) == {"batchItemFailures": []}
    job = store.jobs["job-1"]
    assert job.status is JobStatus.FAILED_FINAL and job.error is not None and job.error.code == "dead_lettered"
