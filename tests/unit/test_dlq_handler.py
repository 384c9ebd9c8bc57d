"""The DLQ Lambda handler with fakes: a job with attempts left is redriven (bounded), any other non-terminal job
without a live lease goes FAILED_FINAL, terminal jobs are left alone, errors are reported."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from runtime.dlq_handler import DeadLetterHandler, handle_event
from runtime.domain.job import Job, JobStatus, Priority
from runtime.domain.ports import JobMessage, JobStoreUnavailable
from runtime.domain.redrive import MAX_REDRIVES
from runtime.domain.schedule import DelayWindow
from tests.unit.fakes import FakeClock, FakeQueue, InMemoryJobStore, make_job

MAX_ATTEMPTS = 3


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


def handler(
    store: InMemoryJobStore, queue: FakeQueue | None = None, clock: FakeClock | None = None
) -> DeadLetterHandler:
    return DeadLetterHandler(
        store, queue if queue is not None else FakeQueue(), clock or FakeClock(), max_attempts=MAX_ATTEMPTS
    )


def run(store: InMemoryJobStore, *records: dict[str, Any], queue: FakeQueue | None = None) -> dict[str, Any]:
    return handle_event({"Records": list(records)}, None, dead_letters=handler(store, queue))


EXPIRED = FakeClock().now() - timedelta(seconds=1)


@pytest.mark.parametrize(
    "changes",
    [
        {"status": JobStatus.PENDING, "attempts": 0},
        {"status": JobStatus.PROCESSING, "attempts": 1, "lease_expires_at": EXPIRED},
        {"status": JobStatus.FAILED, "attempts": 2},
        # A manual retry gave the job its full budget again: attempts count from its retry_base.
        {"status": JobStatus.PENDING, "attempts": 3, "retry_base": 3},
    ],
    ids=["pending", "processing-expired", "failed", "pending-after-manual-retry"],
)
def test_job_with_attempts_left_is_redriven_to_its_own_queue_not_failed(changes: dict[str, Any]) -> None:
    """A killed worker costs each message it had received one receive and no attempt: after maxReceiveCount
    such receives the job still has attempts left, and a fresh message is what it is owed."""
    store, queue = InMemoryJobStore(), FakeQueue()
    store.create(make_job(priority=Priority.HIGH, **changes))
    before = store.jobs["job-1"]
    response = run(store, sqs_record("m1", job_body("job-1"), receive_count=3), queue=queue)
    job = store.jobs["job-1"]
    assert response == {"batchItemFailures": []}
    assert (job.status, job.attempts, job.error) == (before.status, before.attempts, None)
    assert (job.redrives, job.redriven_by) == (1, "m1")
    assert queue.sent == [JobMessage(job_id="job-1", trace_id="trace-job-1", priority=Priority.HIGH)]
    if before.status is JobStatus.PENDING:
        assert job.pending_since == FakeClock().now()  # the republisher's marker: no second publish from it


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.FAILED])
def test_job_whose_attempts_are_used_up_becomes_failed_final_with_the_reason(status: JobStatus) -> None:
    store, queue = InMemoryJobStore(), FakeQueue()
    store.create(make_job(status=status, attempts=MAX_ATTEMPTS, lease_expires_at=EXPIRED))
    response = run(store, sqs_record("m1", job_body("job-1"), receive_count=4), queue=queue)
    job = store.jobs["job-1"]
    assert response == {"batchItemFailures": []}
    assert job.status is JobStatus.FAILED_FINAL and job.attempts == MAX_ATTEMPTS and job.redrives == 0
    assert job.error is not None and job.error.code == "dead_lettered" and job.error.permanent
    assert "4 receives" in job.error.message and "3 attempts used up" in job.error.message
    assert queue.sent == []


def test_job_redriven_to_the_limit_becomes_failed_final_saying_why() -> None:
    """A job that keeps killing its workers (a poison job) is redriven MAX_REDRIVES times, then failed."""
    store, queue = InMemoryJobStore(), FakeQueue()
    store.create(make_job())
    for index in range(MAX_REDRIVES):
        assert run(store, sqs_record(f"m{index}", job_body("job-1")), queue=queue) == {"batchItemFailures": []}
    assert store.jobs["job-1"].redrives == MAX_REDRIVES and len(queue.sent) == MAX_REDRIVES
    assert run(store, sqs_record("last", job_body("job-1")), queue=queue) == {"batchItemFailures": []}
    job = store.jobs["job-1"]
    assert job.status is JobStatus.FAILED_FINAL and job.attempts == 0 and len(queue.sent) == MAX_REDRIVES
    assert job.error is not None and job.error.code == "dead_lettered"
    assert f"redriven {MAX_REDRIVES} times already" in job.error.message


def test_concurrent_duplicate_dead_letters_redrive_once() -> None:
    """Two dead letters of one job (a duplicate message) read it at the same moment: one conditional write wins,
    the other sees the redrive it lost to and publishes nothing."""
    store, queue = InMemoryJobStore(), FakeQueue()
    store.create(make_job())
    both_read = threading.Barrier(2)
    original_get = store.get
    reads: dict[str, int] = {}

    def get_together(job_id: str) -> Job | None:
        job = original_get(job_id)
        name = threading.current_thread().name
        reads[name] = reads.get(name, 0) + 1
        if reads[name] == 1:
            both_read.wait(5)  # both decide on the same read
        return job

    store.get = get_together  # type: ignore[method-assign]
    dead_letters = handler(store, queue)
    results: dict[str, Any] = {}

    def deliver(message_id: str) -> None:
        results[message_id] = dead_letters.handle_record(SQSRecord(sqs_record(message_id, job_body("job-1"))))

    threads = [threading.Thread(target=deliver, args=(m,), name=m) for m in ("m1", "m2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results.values()) == ["already_redriven", "redriven"]
    assert len(queue.sent) == 1 and store.jobs["job-1"].redrives == 1


def test_a_failed_send_is_retried_by_the_same_dead_letter_even_at_the_limit() -> None:
    """The counter is written before the send: when the send fails the record is retried, and its retry publishes
    without counting again, even when that redrive was the last one allowed."""
    store, queue = InMemoryJobStore(), FakeQueue()
    store.create(make_job(redrives=MAX_REDRIVES - 1, redriven_by="earlier"))
    queue.fail_send = True
    assert run(store, sqs_record("m1", job_body("job-1")), queue=queue) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}]
    }
    assert store.jobs["job-1"].redrives == MAX_REDRIVES and queue.sent == []
    queue.fail_send = False
    assert run(store, sqs_record("m1", job_body("job-1")), queue=queue) == {"batchItemFailures": []}
    job = store.jobs["job-1"]
    assert job.status is JobStatus.PENDING and job.redrives == MAX_REDRIVES and len(queue.sent) == 1


def test_a_scheduled_job_keeps_its_delay_when_redriven() -> None:
    store, queue = InMemoryJobStore(), FakeQueue()
    now = FakeClock().now()
    store.create(make_job(run_at=now + timedelta(seconds=120), pending_since=now + timedelta(seconds=120)))
    assert run(store, sqs_record("m1", job_body("job-1")), queue=queue) == {"batchItemFailures": []}
    assert [message.delay_s for message in queue.sent] == [120]
    assert store.jobs["job-1"].pending_since == now + timedelta(seconds=120)


def test_a_scheduled_job_beyond_the_delay_window_is_left_to_the_republisher() -> None:
    store, queue = InMemoryJobStore(), FakeQueue()
    now = FakeClock().now()
    run_at = now + timedelta(seconds=2000)
    store.create(make_job(run_at=run_at))
    dead_letters = DeadLetterHandler(
        store, queue, FakeClock(), max_attempts=MAX_ATTEMPTS, delay_window=DelayWindow(900)
    )
    assert handle_event({"Records": [sqs_record("m1", job_body("job-1"))]}, None, dead_letters=dead_letters) == {
        "batchItemFailures": []
    }
    assert queue.sent == [] and store.jobs["job-1"].redrives == 1
    assert store.jobs["job-1"].pending_since == run_at - timedelta(seconds=900)


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
    store.create(make_job("job-1", attempts=MAX_ATTEMPTS))
    store.create(make_job("job-2", attempts=MAX_ATTEMPTS))
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


def test_processing_job_whose_lease_expired_and_attempts_are_used_up_becomes_failed_final() -> None:
    store = InMemoryJobStore()
    now = FakeClock().now()
    store.create(make_job(status=JobStatus.PROCESSING, attempts=3, lease_expires_at=now - timedelta(seconds=1)))
    assert run(store, sqs_record("m1", job_body("job-1"))) == {"batchItemFailures": []}
    job = store.jobs["job-1"]
    assert job.status is JobStatus.FAILED_FINAL and job.error is not None and job.error.code == "dead_lettered"
