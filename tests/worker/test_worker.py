"""The worker in-process against moto over HTTP with the real adapters: outcomes, retries, heartbeat,
duplicates, the republisher, and the DLQ handler racing a worker."""

from __future__ import annotations

import dataclasses
import json
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runtime.adapters.dynamodb.codec import key
from runtime.adapters.dynamodb.schema import Attr
from runtime.aws_clients import build_client
from runtime.dlq_handler import DeadLetterHandler, handle_event
from runtime.domain.backoff import Backoff, Jitter
from runtime.domain.job import JobStatus
from runtime.domain.ports import ObjectNotFound, ReceivedMessage
from runtime.domain.processing import MessageProcessor, Outcome, ProcessingConfig
from runtime.domain.redrive import MAX_REDRIVES
from runtime.job_types.confinement import Confinement
from runtime.observability import aws_calls
from tests.worker.conftest import WorkerEnv, running
from tests.worker.plugin_jobs import read_runs


def test_builtin_jobs_succeed_and_their_messages_are_deleted(worker_env: WorkerEnv) -> None:
    env = worker_env
    bucket = env.settings.documents_bucket
    source = f"s3://{bucket}/tenants/acme/in/doc.txt"
    env.objects.put_bytes(source, b"alpha beta\ngamma alpha\n", content_type="text/plain")
    document = env.submit(
        "process_document",
        {"source": source, "destination": f"s3://{bucket}/tenants/acme/out/doc.json"},
    )
    report = env.submit(
        "generate_report",
        {
            "title": "t",
            "rows": [{"k": "a", "v": 1}, {"k": "a", "v": 3}, {"k": "b", "v": 2}],
            "group_by": "k",
            "metric": "v",
            "format": "csv",
            "destination": f"s3://{bucket}/tenants/acme/out/report.csv",
        },
    )
    transform = env.submit(
        "transform_data", {"records": [{"a": "x"}, {"a": "y"}], "operations": [{"op": "uppercase", "fields": ["a"]}]}
    )
    with running(env):
        done = [env.wait_terminal(job.job_id) for job in (document, report, transform)]
        env.wait_for("the queue to drain", lambda: env.queue_depth() == 0)
    assert [job.status for job in done] == [JobStatus.SUCCEEDED] * 3
    assert all(job.attempts == 1 for job in done)
    assert done[0].result is not None and done[0].result["summary"]["words"] == 4
    summary = json.loads(env.objects.get_bytes(f"s3://{bucket}/tenants/acme/out/doc.json"))["summary"]
    assert summary["top_words"][0] == {"word": "alpha", "count": 2}
    assert env.objects.get_bytes(f"s3://{bucket}/tenants/acme/out/report.csv").decode().splitlines()[1] == "a,2,4,1,3,2"
    assert done[2].result is not None and done[2].result["records"] == [{"a": "X"}, {"a": "Y"}]


def test_transient_failure_is_retried_after_backoff_and_then_succeeds(worker_env: WorkerEnv) -> None:
    env = worker_env
    run_log = str(env.tmp / "runs.log")
    job = env.submit("test_slow", {"run_log": run_log, "fail_attempts": 1})
    with running(env):
        done = env.wait_terminal(job.job_id)
        env.wait_for("the queue to drain", lambda: env.queue_depth() == 0)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 2
    assert {"FAILED", "PROCESSING", "SUCCEEDED"} <= set(done.transitions)
    assert [(event, attempt) for event, _, attempt in read_runs(run_log)] == [
        ("start", 1),
        ("failed", 1),
        ("start", 2),
        ("done", 2),
    ]
    assert done.result is not None and done.result["attempt"] == 2


def test_permanent_failure_is_final_at_once_without_redelivery(worker_env: WorkerEnv) -> None:
    env = worker_env
    bucket = env.settings.documents_bucket
    missing = f"s3://{bucket}/tenants/acme/in/missing.txt"
    job = env.submit("process_document", {"source": missing, "destination": f"s3://{bucket}/tenants/acme/out/x.json"})
    with running(env):
        done = env.wait_terminal(job.job_id)
        env.wait_for("the queue to drain", lambda: env.queue_depth() == 0)
    assert done.status is JobStatus.FAILED_FINAL and done.attempts == 1
    assert done.error is not None and done.error.permanent and missing in done.error.message
    assert env.queue_depth(env.settings.dead_letter_queue_url) == 0
    assert env.job(job.job_id).attempts == 1  # the message was deleted, not redelivered


def test_message_forged_with_another_tenants_object_is_refused_before_any_s3_call(worker_env: WorkerEnv) -> None:
    # A job stored and queued directly (as a forged message would be), naming the objects of tenant "other".
    env = worker_env
    bucket = env.settings.documents_bucket
    theirs = f"s3://{bucket}/tenants/other/in/secret.txt"
    env.objects.put_bytes(theirs, b"their data", content_type="text/plain")
    destination = f"s3://{bucket}/tenants/other/out/stolen.json"
    job = env.submit("process_document", {"source": theirs, "destination": destination})
    before = aws_calls.snapshot()
    with running(env):
        done = env.wait_terminal(job.job_id)
    s3_calls = [op for operations in calls_since(before).values() for op in operations if op.startswith("s3.")]
    assert done.status is JobStatus.FAILED_FINAL and done.attempts == 1
    assert done.error is not None and done.error.permanent and done.error.code == "object_outside_tenant"
    assert f"s3://{bucket}/tenants/acme/" in done.error.message and "params.source" in done.error.message
    assert s3_calls == []  # nothing read, nothing written
    with pytest.raises(ObjectNotFound):
        env.objects.get_bytes(destination)


def test_job_longer_than_the_visibility_timeout_runs_once(worker_env: WorkerEnv) -> None:
    # A 6 s visibility timeout (heartbeat every 2 s) leaves a late beat on a loaded machine room to land.
    env = dataclasses.replace(worker_env, settings=worker_env.settings.model_copy(update={"visibility_timeout_s": 6}))
    run_log = str(env.tmp / "runs.log")
    # 2.5 visibility timeouts: without the heartbeat the message would reappear and the lease would expire.
    job = env.submit("test_slow", {"run_log": run_log, "hold_s": 2.5 * env.settings.visibility_timeout_s})
    before = aws_calls.snapshot()
    with running(env, count=2):
        done = env.wait_terminal(job.job_id)
        env.wait_for("the queue to drain", lambda: env.queue_depth() == 0)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1
    assert [event for event, _, _ in read_runs(run_log)] == ["start", "done"]
    # The heartbeat's requests count as background work, the message's own as worker work.
    calls = calls_since(before)
    assert calls["background"]["sqs.ChangeMessageVisibilityBatch"] >= 2
    assert calls["background"]["dynamodb.UpdateItem"] >= 2  # lease extensions
    assert {"sqs.ReceiveMessage", "dynamodb.UpdateItem", "sqs.DeleteMessageBatch"} <= set(calls["worker"])


def calls_since(before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    delta: dict[str, dict[str, int]] = {}
    for category, operations in aws_calls.snapshot().items():
        for operation, count in operations.items():
            grown = count - before.get(category, {}).get(operation, 0)
            if grown > 0:
                delta.setdefault(category, {})[operation] = grown
    return delta


def test_duplicate_and_late_messages_for_a_terminal_job_change_nothing(worker_env: WorkerEnv) -> None:
    env = worker_env
    run_log = str(env.tmp / "runs.log")
    job = env.submit("test_slow", {"run_log": run_log})
    with running(env):
        first = env.wait_terminal(job.job_id)
        env.wait_for("the queue to drain", lambda: env.queue_depth() == 0)
        for _ in range(3):
            env.queue.send(env_message(job.job_id, job.trace_id))
        env.wait_for("the duplicates to be deleted", lambda: env.queue_depth() == 0)
    assert first.status is JobStatus.SUCCEEDED
    assert env.job(job.job_id) == first
    assert [event for event, _, _ in read_runs(run_log)] == ["start", "done"]


def test_republisher_publishes_a_pending_job_that_has_no_message(worker_env: WorkerEnv) -> None:
    env = worker_env
    run_log = str(env.tmp / "runs.log")
    # Written as if the API died between the put and the send: PENDING for a while, no message.
    stale = datetime.now(UTC) - timedelta(seconds=30)
    job = env.submit("test_slow", {"run_log": run_log}, send=False, pending_since=stale)
    assert env.queue_depth() == 0
    with running(env, republish=True):
        done = env.wait_terminal(job.job_id)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1
    assert [event for event, _, _ in read_runs(run_log)] == ["start", "done"]


def env_message(job_id: str, trace_id: str) -> Any:
    from runtime.domain.ports import JobMessage

    return JobMessage(job_id=job_id, trace_id=trace_id)


def dlq_event(job_id: str, trace_id: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"dlq-{job_id}",
                "receiptHandle": "rh",
                "body": json.dumps({"jobId": job_id, "traceId": trace_id}),
                "attributes": {"ApproximateReceiveCount": "10", "SentTimestamp": "0"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dlq",
                "awsRegion": "us-east-1",
            }
        ]
    }


def _exhaust_redrives(env: WorkerEnv, job_id: str) -> None:
    """The job was redriven MAX_REDRIVES times already: its next dead letter is a FAILED_FINAL verdict."""
    dynamodb = build_client("dynamodb", region="us-east-1", endpoint_url=env.endpoint)
    dynamodb.update_item(
        TableName=env.settings.table_name,
        Key=key(job_id),
        UpdateExpression=f"SET {Attr.REDRIVES} = :n",
        ExpressionAttributeValues={":n": {"N": str(MAX_REDRIVES)}},
    )


@pytest.mark.parametrize("redrives_left", [False, True], ids=["redrive-limit-reached", "redrives-left"])
def test_dlq_handler_racing_a_worker_leaves_one_consistent_terminal_state(
    worker_env: WorkerEnv, redrives_left: bool
) -> None:
    """A dead letter racing the worker that received the job: a FAILED_FINAL verdict (the job is out of redrives)
    and the worker's outcome never both count; a job with attempts and redrives left is never failed (the verdict
    redrives it or leaves it to the worker) and runs once."""
    env = worker_env
    processor = MessageProcessor(
        store=env.store,
        objects=env.objects,
        confinement=Confinement(env.settings.documents_bucket),
        config=ProcessingConfig(visibility_timeout_s=30, max_attempts=3),
        backoff=Backoff(1.0, 2.0, Jitter.EQUAL),
    )
    dead_letters = DeadLetterHandler(env.store, env.queue, max_attempts=env.settings.max_attempts)
    rng = random.Random(7)
    seen: dict[str, tuple[Any, Any]] = {}
    jobs = []
    for index in range(25):
        run_log = str(env.tmp / f"race-{index}.log")
        jobs.append((env.submit("test_slow", {"run_log": run_log, "hold_s": rng.choice([0, 0.01, 0.05])}), run_log))
        if not redrives_left:
            _exhaust_redrives(env, jobs[-1][0].job_id)
    received: dict[str, ReceivedMessage] = {}
    while len(received) < len(jobs):
        for message in env.queue.receive(max_messages=10, wait_s=1, visibility_timeout_s=30):
            assert message.message is not None
            received[message.message.job_id] = message

    for job, _ in jobs:
        start = threading.Barrier(2)
        results: dict[str, Any] = {}
        delay = rng.choice([0.0, 0.01, 0.05, 0.1, 0.2])

        def work(job_id: str = job.job_id, results: dict[str, Any] = results, start: threading.Barrier = start) -> None:
            start.wait()
            results["worker"] = processor.process(received[job_id])

        def verdict(
            job: Any = job, results: dict[str, Any] = results, start: threading.Barrier = start, delay: float = delay
        ) -> None:
            start.wait()
            threading.Event().wait(delay)
            results["dlq"] = handle_event(dlq_event(job.job_id, job.trace_id), None, dead_letters=dead_letters)

        threads = [threading.Thread(target=work), threading.Thread(target=verdict)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        seen[job.job_id] = (results["worker"], results["dlq"])

    outcomes = {"succeeded": 0, "dead_lettered": 0, "deferred_to_worker": 0, "redriven": 0}
    for job, run_log in jobs:
        final = env.job(job.job_id)
        decision, dlq_response = seen[job.job_id]
        completions = [event for event, _, _ in read_runs(run_log) if event == "done"]
        assert final.is_terminal
        if dlq_response["batchItemFailures"]:
            # The verdict met the worker's live lease: the worker decided, and the dead letter, delivered
            # again as the event source mapping would, now finds a terminal job and changes nothing.
            outcomes["deferred_to_worker"] += 1
            assert final.status is JobStatus.SUCCEEDED and decision.outcome is Outcome.SUCCEEDED
            assert completions == ["done"]
            redelivered = handle_event(dlq_event(job.job_id, job.trace_id), None, dead_letters=dead_letters)
            assert redelivered == {"batchItemFailures": []}
            assert env.job(job.job_id) == final
        elif redrives_left and final.redrives:
            # Redriven before the worker's claim: a fresh message is out, and the worker's own run ends the job.
            outcomes["redriven"] += 1
            assert final.redrives == 1 and final.status is JobStatus.SUCCEEDED
            assert decision.outcome is Outcome.SUCCEEDED and completions == ["done"]
        elif final.status is JobStatus.SUCCEEDED:
            # The worker recorded its success first; the DLQ verdict found a terminal job and changed nothing.
            outcomes["succeeded"] += 1
            assert decision.outcome is Outcome.SUCCEEDED and final.result is not None and final.error is None
            assert completions == ["done"]
        else:
            # The verdict came first: whatever the handler did afterwards was not recorded.
            outcomes["dead_lettered"] += 1
            assert not redrives_left
            assert final.status is JobStatus.FAILED_FINAL and final.result is None
            assert final.error is not None and final.error.code == "dead_lettered"
            assert decision.outcome in (Outcome.DUPLICATE, Outcome.LOST_CLAIM)
    assert sum(outcomes.values()) == len(jobs)


def test_an_unexpected_handler_exception_is_stored_as_a_code_and_logged_with_its_text(
    worker_env: WorkerEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env = dataclasses.replace(worker_env, settings=worker_env.settings.model_copy(update={"max_attempts": 1}))
    job = env.submit("test_broken", {"key": "arn:aws:dynamodb:internal-table"})
    with running(env):
        done = env.wait_terminal(job.job_id)
    assert done.status is JobStatus.FAILED_FINAL and done.error is not None
    assert done.error.code == "handler_error"
    assert done.error.message == (
        f"the job failed with an unexpected error; its details are logged under trace id {job.trace_id}"
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"job_message"' in line]
    logged = [line for line in lines if line.get("jobId") == job.job_id and line.get("errorDetail")]
    assert logged and logged[0]["errorDetail"] == "KeyError: 'arn:aws:dynamodb:internal-table'"
    assert logged[0]["traceId"] == job.trace_id and logged[0]["level"] == "warning"
