"""The lazy claim (runtime/domain/lazy_claim.py) with the real worker against moto over HTTP: a quick job from its
submit's message costs one read per receive and one write, a long one is claimed past the threshold and goes on as
any claimed job, a job canceled while its message waited never runs, one the read does not show PENDING (claimed
elsewhere) or could not read is claimed first, a cancel or a duplicate run after the read is settled by the
conditional writes, and every other message is claimed first without a read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runtime.adapters.dynamodb.codec import key
from runtime.adapters.dynamodb.schema import Attr
from runtime.aws_clients import build_client
from runtime.domain.job import Job, JobStatus
from runtime.domain.ports import JobMessage, JobStoreUnavailable, ObjectNotFound
from runtime.domain.schedule import ScheduleRequest
from runtime.observability import aws_calls
from runtime.settings import Settings
from runtime.worker.runner import Worker
from tests.worker.conftest import TENANT, WorkerEnv, running
from tests.worker.plugin_jobs import read_runs
from tests.worker.test_cancel import service
from tests.worker.test_schedule import submit as submit_scheduled
from tests.worker.test_worker import calls_since

UPDATE = "dynamodb.UpdateItem"
READ = "dynamodb.BatchGetItem"


def raw_item(env: WorkerEnv, job_id: str) -> dict[str, Any]:
    client = build_client("dynamodb", region="us-east-1", endpoint_url=env.endpoint)
    item: dict[str, Any] = client.get_item(TableName=env.settings.table_name, Key=key(job_id), ConsistentRead=True)[
        "Item"
    ]
    return item


def finish(env: WorkerEnv, job: Job, settings: Settings | None = None, *, count: int = 1) -> tuple[Job, dict[str, Any]]:
    """Runs workers until the job ended and its messages are gone: the job, and the AWS calls made meanwhile."""
    before = aws_calls.snapshot()
    with running(env, settings, count=count):
        done = env.wait_terminal(job.job_id)
        env.wait_for("the queue to drain", lambda: env.queue_depth() == 0)
    return done, calls_since(before)


def events(run_log: str) -> list[tuple[str, int]]:
    return [(event, attempt) for event, _, attempt in read_runs(run_log)]


def test_a_quick_job_costs_one_write_and_goes_from_pending_to_succeeded(worker_env: WorkerEnv) -> None:
    env = worker_env
    run_log = str(env.tmp / "quick.log")
    job = env.submit("test_slow", {"run_log": run_log}, from_submit=True)
    done, calls = finish(env, job)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1 and done.result is not None
    assert calls["worker"][UPDATE] == 1  # the outcome only: no claim
    assert calls["worker"][READ] == 1  # the read after the receive that brought it
    assert "dynamodb.GetItem" not in calls["worker"] and UPDATE not in calls.get("background", {})
    assert events(run_log) == [("start", 1), ("done", 1)]
    # It started (the PROCESSING transition) without ever being seen PROCESSING: its status event is from PENDING.
    processing, succeeded = done.transitions["PROCESSING"], done.transitions["SUCCEEDED"]
    assert done.created_at <= processing <= succeeded
    item = raw_item(env, job.job_id)
    assert item[Attr.PREVIOUS_STATUS] == {"S": "PENDING"}
    assert Attr.PENDING_SINCE not in item and Attr.LEASE_EXPIRES_AT not in item


def test_a_job_that_outlives_the_threshold_is_claimed_and_goes_on_as_a_claimed_one(worker_env: WorkerEnv) -> None:
    env = worker_env
    run_log = str(env.tmp / "long.log")
    # 2.5 s: past the 1 s threshold, and past the 2 s visibility timeout, so the heartbeat must keep it.
    job = env.submit("test_slow", {"run_log": run_log, "hold_s": 2.5}, from_submit=True)
    done, calls = finish(env, job, count=2)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1
    assert events(run_log) == [("start", 1), ("done", 1)]
    assert calls["worker"][UPDATE] == 2  # the claim past the threshold, then the outcome
    assert calls["worker"][READ] == 1
    assert calls["background"][UPDATE] >= 1  # lease renewals of the claimed job
    assert calls["background"]["sqs.ChangeMessageVisibilityBatch"] >= 1
    assert raw_item(env, job.job_id)[Attr.PREVIOUS_STATUS] == {"S": "PROCESSING"}
    claimed = done.transitions["PROCESSING"]
    assert done.transitions["SUCCEEDED"] - claimed >= timedelta(seconds=1)  # claimed about 1 s into a 2.5 s run


def test_a_cancel_before_the_claim_is_a_pending_cancel_and_the_run_is_discarded(worker_env: WorkerEnv) -> None:
    env = worker_env
    settings = env.settings.model_copy(update={"lazy_claim_after_s": 1.5})
    run_log = str(env.tmp / "canceled.log")
    job = env.submit("test_cancelable", {"run_log": run_log, "hold_s": 30}, from_submit=True)
    with running(env, settings):
        env.wait_for("the handler to start", lambda: events(run_log) == [("start", 1)])
        answer = service(env).cancel(job.job_id, tenant=TENANT)
        # The job is still PENDING in the record: canceled at once.
        assert answer.done and answer.job.status is JobStatus.CANCELED
        # The claim at the threshold is refused: the handler is told to stop, the message is deleted.
        env.wait_for("the handler to stop", lambda: ("canceled", 1) in events(run_log), limit_s=15)
        env.wait_for("the queue to drain", lambda: env.queue_depth() == 0)
    final = env.job(job.job_id)
    assert final.status is JobStatus.CANCELED and final.attempts == 0 and final.result is None
    assert "PROCESSING" not in final.transitions and not final.cancel_requested


def test_a_job_canceled_while_its_message_waits_never_runs(worker_env: WorkerEnv) -> None:
    env = worker_env
    bucket = env.settings.documents_bucket
    source, destination = f"s3://{bucket}/tenants/acme/in/c.txt", f"s3://{bucket}/tenants/acme/out/c.json"
    env.objects.put_bytes(source, b"alpha beta\n", content_type="text/plain")
    run_log = str(env.tmp / "queued.log")
    document = env.submit("process_document", {"source": source, "destination": destination}, from_submit=True)
    plugin = env.submit("test_slow", {"run_log": run_log}, from_submit=True)
    for job in (document, plugin):
        answer = service(env).cancel(job.job_id, tenant=TENANT)
        assert answer.done and answer.job.status is JobStatus.CANCELED
    before = aws_calls.snapshot()
    with running(env):
        env.wait_for("the queue to drain", lambda: env.queue_depth() == 0)  # both messages deleted
    calls = calls_since(before)
    assert read_runs(run_log) == []  # the handler never ran
    with pytest.raises(ObjectNotFound):
        env.objects.get_bytes(destination)  # process_document never wrote its output
    for job in (document, plugin):
        final = env.job(job.job_id)
        assert final.status is JobStatus.CANCELED and final.attempts == 0 and "PROCESSING" not in final.transitions
    assert calls["worker"][READ] >= 1 and UPDATE not in calls["worker"]  # read, then deleted: no write at all


def test_a_job_claimed_elsewhere_since_its_submit_is_not_run_unclaimed(worker_env: WorkerEnv) -> None:
    env = worker_env
    run_log = str(env.tmp / "elsewhere.log")
    job = env.submit("test_slow", {"run_log": run_log}, from_submit=True)
    # Another worker holds it (a republished copy it claimed, say): PROCESSING under a live lease.
    now = datetime.now(UTC)
    assert env.store.claim(job.job_id, now=now, lease_until=now + timedelta(seconds=60)).claimed
    before = aws_calls.snapshot()
    with running(env):
        # The message's fate is set once the job was dealt with: kept until the lease ends (hidden, not deleted).
        kept = "sqs.ChangeMessageVisibility"
        env.wait_for("the message to be kept", lambda: kept in calls_since(before).get("worker", {}))
    calls = calls_since(before)
    assert read_runs(run_log) == []
    assert calls["worker"][READ] == 1 and calls["worker"][UPDATE] == 1  # the read, then the claim (refused)
    held = env.job(job.job_id)
    assert held.status is JobStatus.PROCESSING and held.attempts == 1
    assert env.queue_depth() == 1  # kept (hidden) for the lease's end, never deleted


@pytest.mark.parametrize("canceled", [False, True])
def test_a_failed_read_means_a_claim_first_never_a_blind_run(worker_env: WorkerEnv, canceled: bool) -> None:
    env = worker_env
    run_log = str(env.tmp / f"unread-{canceled}.log")
    job = env.submit("test_slow", {"run_log": run_log}, from_submit=True)
    if canceled:
        assert service(env).cancel(job.job_id, tenant=TENANT).done

    def down(job_ids: Any) -> Any:
        raise JobStoreUnavailable("dynamodb batch_get_item: throttled")

    env.store.get_many = down  # type: ignore[method-assign]
    before = aws_calls.snapshot()
    with running(env):
        env.wait_for("the queue to drain", lambda: env.queue_depth() == 0)
    calls = calls_since(before)
    final = env.job(job.job_id)
    if canceled:
        # The claim finds it CANCELED: deleted unrun.
        assert read_runs(run_log) == [] and final.status is JobStatus.CANCELED and final.attempts == 0
        assert calls["worker"][UPDATE] == 1
    else:
        assert events(run_log) == [("start", 1), ("done", 1)] and final.status is JobStatus.SUCCEEDED
        assert calls["worker"][UPDATE] == 2  # claim, then outcome
        assert raw_item(env, job.job_id)[Attr.PREVIOUS_STATUS] == {"S": "PROCESSING"}


def test_two_runs_of_one_message_record_one_outcome_and_one_attempt(worker_env: WorkerEnv) -> None:
    env = worker_env
    run_log = str(env.tmp / "twice.log")
    job = env.submit("test_slow", {"run_log": run_log, "hold_s": 0.2}, from_submit=True)
    env.queue.send(JobMessage.for_job(job, from_submit=True))  # SQS's duplicate delivery: a second first receive
    # Both are queued before the workers start, so both reads (one receive or two) find the job PENDING.
    # The threshold as far as the 2 s visibility allows: a loaded machine must not make a 0.2 s run a claimed one.
    done, calls = finish(env, job, env.settings.model_copy(update={"lazy_claim_after_s": 1.9}), count=2)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1
    assert sorted(events(run_log)) == [("done", 1), ("done", 1), ("start", 1), ("start", 1)]
    assert calls["worker"][UPDATE] == 2  # both outcome writes tried, one refused
    assert calls["worker"]["dynamodb.GetItem"] == 1  # the refused one reads why, and deletes its message
    assert raw_item(env, job.job_id)[Attr.PREVIOUS_STATUS] == {"S": "PENDING"}


def test_a_redelivered_message_is_claimed_first(worker_env: WorkerEnv) -> None:
    env = worker_env
    run_log = str(env.tmp / "redelivered.log")
    job = env.submit("test_slow", {"run_log": run_log}, from_submit=True)
    # A worker that received it and died: the message comes back with a receive count of 2.
    (first,) = env.queue.receive(max_messages=1, wait_s=1, visibility_timeout_s=0)
    assert first.message is not None and first.message.from_submit and first.receive_count == 1
    done, calls = finish(env, job)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1
    assert calls["worker"][UPDATE] == 2  # claim, then outcome
    assert READ not in calls["worker"]  # no read: its claim reads the job
    assert raw_item(env, job.job_id)[Attr.PREVIOUS_STATUS] == {"S": "PROCESSING"}


def test_a_message_not_marked_as_a_submits_is_claimed_first(worker_env: WorkerEnv) -> None:
    env = worker_env
    job = env.submit("test_slow", {"run_log": str(env.tmp / "plain.log")})  # as a retry's or an older message
    done, calls = finish(env, job)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1
    assert calls["worker"][UPDATE] == 2 and READ not in calls["worker"]
    assert raw_item(env, job.job_id)[Attr.PREVIOUS_STATUS] == {"S": "PROCESSING"}


@pytest.mark.parametrize(("fail_attempts", "status", "attempts"), [(1, JobStatus.SUCCEEDED, 2), (5, "final", 3)])
def test_a_failed_attempt_run_unclaimed_is_retried_as_a_claimed_one_would_be(
    worker_env: WorkerEnv, fail_attempts: int, status: Any, attempts: int
) -> None:
    env = worker_env
    outcomes = {}
    for from_submit in (False, True):
        run_log = str(env.tmp / f"fails-{from_submit}.log")
        job = env.submit("test_slow", {"run_log": run_log, "fail_attempts": fail_attempts}, from_submit=from_submit)
        done, _ = finish(env, job)
        error = done.error.code if done.error is not None else None
        outcomes[from_submit] = (done.status, done.attempts, error, [event for event, _ in events(run_log)])
        if from_submit:
            # The first attempt ran unclaimed: its FAILED came from PENDING; the redelivery was claimed first.
            assert events(run_log)[:2] == [("start", 1), ("failed", 1)]
            assert set(done.transitions) >= {"PENDING", "PROCESSING", "FAILED"}
    assert outcomes[True] == outcomes[False]
    expected = JobStatus.FAILED_FINAL if status == "final" else status
    assert outcomes[True][:2] == (expected, attempts)


def test_a_scheduled_job_is_claimed_first_and_never_starts_before_its_run_at(worker_env: WorkerEnv) -> None:
    env = worker_env
    result = submit_scheduled(env, ScheduleRequest(delay_s=2))
    job = result.job
    assert result.published and job.run_at is not None
    done, calls = finish(env, job)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1
    assert done.transitions["PROCESSING"] >= job.run_at
    assert raw_item(env, job.job_id)[Attr.PREVIOUS_STATUS] == {"S": "PROCESSING"}  # claimed, not run unclaimed
    assert calls["worker"][UPDATE] == 2


@pytest.mark.parametrize("claimed", [False, True], ids=["before_the_threshold", "after_it"])
def test_the_copy_a_release_publishes_runs_unclaimed_only_if_its_job_was_never_claimed(
    worker_env: WorkerEnv, claimed: bool
) -> None:
    env = worker_env
    gate, run_log = env.tmp / "gate", str(env.tmp / "released.log")
    job = env.submit("test_slow", {"run_log": run_log, "gate": str(gate)}, from_submit=True)
    sent: list[JobMessage] = []
    send_many = env.queue.send_many

    def recording(messages: Any) -> frozenset[int]:
        sent.extend(messages)
        return send_many(messages)

    env.queue.send_many = recording  # type: ignore[method-assign]
    worker = Worker(store=env.store, queue=env.queue, objects=env.objects, settings=env.settings, republish=False)
    worker.start()
    try:
        env.wait_for("the job to start", lambda: read_runs(run_log) != [])
        if claimed:
            env.wait_for("the claim past the threshold", lambda: env.job(job.job_id).status is JobStatus.PROCESSING)
        else:
            assert env.job(job.job_id).status is JobStatus.PENDING  # running unclaimed
    finally:
        worker.stop(0.2)  # the job is still running: released
        gate.touch()
    # The first copy; a long poll still out at the stop may return it, and it is released again unchanged.
    copy = sent[0]
    assert all(other == copy for other in sent)
    after = env.job(job.job_id)
    # The submit's message again: the next worker's read decides (a release is no attempt).
    assert copy.job_id == job.job_id and copy.from_submit and after.attempts == 0
    del env.queue.send_many
    done, _ = finish(env, job)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1
    if claimed:
        # Handed back (PROCESSING, lease over): the read shows it PROCESSING, so its copy is claimed first.
        assert after.status is JobStatus.PROCESSING
        assert raw_item(env, job.job_id)[Attr.PREVIOUS_STATUS] == {"S": "PROCESSING"}
    else:
        assert after.status is JobStatus.PENDING
        assert raw_item(env, job.job_id)[Attr.PREVIOUS_STATUS] == {"S": "PENDING"}
