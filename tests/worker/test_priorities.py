"""Priorities honored (issue 10, point 6): a high job submitted behind a backlog of low jobs runs long before the
backlog drains, with one SQS queue per priority on moto and the worker's weighted polling."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runtime.adapters.priority_queue import PriorityJobQueue, sqs_priority_queue
from runtime.dlq_handler import DeadLetterHandler, handle_event
from runtime.domain.job import Job, JobStatus, Priority
from runtime.domain.ports import JobMessage
from runtime.local.dlq_poller import DeadLetterPoller
from runtime.worker.runner import Worker
from tests.worker.conftest import WorkerEnv
from tests.worker.plugin_jobs import read_runs

BACKLOG = 300
HOLD_S = 0.2  # real time per job: 4 slots drain the backlog in about 15 s
# Generous: the high job must end before this share of the backlog has run (it typically needs a few percent).
BOUND_SHARE = 0.25


def _priority_queues(env: WorkerEnv) -> PriorityJobQueue:
    """The env's queue as `normal`, plus high and low queues alike it (same redrive to the same DLQ)."""
    attributes = env.sqs.get_queue_attributes(
        QueueUrl=env.settings.queue_url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
    )["Attributes"]
    urls = {Priority.NORMAL: env.settings.queue_url}
    for priority in (Priority.HIGH, Priority.LOW):
        urls[priority] = env.sqs.create_queue(
            QueueName=f"wk-{priority.value}-{uuid.uuid4().hex[:8]}", Attributes=attributes
        )["QueueUrl"]
    return sqs_priority_queue(env.sqs, urls)


def _submit(env: WorkerEnv, queue: PriorityJobQueue, priority: Priority, run_log: Path) -> Job:
    now = datetime.now(UTC)
    job = Job(
        job_id=str(uuid.uuid4()),
        status=JobStatus.PENDING,
        job_type="test_slow",
        priority=priority,
        params={"run_log": str(run_log), "hold_s": HOLD_S},
        metadata={},
        created_at=now,
        updated_at=now,
        trace_id=uuid.uuid4().hex,
        fingerprint="0" * 64,
        transitions={"PENDING": now},
        pending_since=now,
    )
    assert env.store.create(job).created
    queue.send(JobMessage.for_job(job))
    return job


def _done(run_log: Path) -> int:
    return sum(1 for event, _, _ in read_runs(run_log) if event == "done")


def test_high_job_behind_a_low_backlog_ends_before_a_quarter_of_it_drains(worker_env: WorkerEnv) -> None:
    env = worker_env
    queue = _priority_queues(env)
    low_log, high_log = env.tmp / "low.log", env.tmp / "high.log"
    for _ in range(BACKLOG):
        _submit(env, queue, Priority.LOW, low_log)
    worker = Worker(store=env.store, queue=queue, objects=env.objects, settings=env.settings, republish=False)
    worker.start()
    try:
        # The worker is busy on the backlog (and has looked at the empty high queue) before the high job comes.
        env.wait_for("the backlog to start", lambda: _done(low_log) >= 8)
        low_done_at_submit = _done(low_log)
        high = _submit(env, queue, Priority.HIGH, high_log)
        submitted = time.monotonic()
        env.wait_for("the high job", lambda: _done(high_log) == 1)
        high_latency_s = time.monotonic() - submitted
        low_ran_meanwhile = _done(low_log) - low_done_at_submit
        env.wait_for("the backlog to drain", lambda: _done(low_log) == BACKLOG, limit_s=180)
        drain_s = time.monotonic() - submitted
    finally:
        worker.stop(5.0)
    print(
        json.dumps(
            {
                "highLatencyS": round(high_latency_s, 2),
                "lowRanMeanwhile": low_ran_meanwhile,
                "backlogDrainS": round(drain_s, 2),
            }
        )
    )
    assert env.job(high.job_id).status is JobStatus.SUCCEEDED
    assert low_ran_meanwhile < BOUND_SHARE * BACKLOG, (low_ran_meanwhile, high_latency_s, drain_s)
    assert high_latency_s < BOUND_SHARE * drain_s


@pytest.mark.parametrize("priority", list(Priority))
def test_each_priority_travels_in_its_own_queue_and_deletes_there(worker_env: WorkerEnv, priority: Priority) -> None:
    env = worker_env
    queue = _priority_queues(env)
    run_log = env.tmp / "runs.log"
    job = _submit(env, queue, priority, run_log)
    own_url = {p: q._url for p, q in queue.queues.items()}  # type: ignore[attr-defined]
    assert env.queue_depth(own_url[priority]) == 1
    assert all(env.queue_depth(url) == 0 for p, url in own_url.items() if p is not priority)
    worker = Worker(store=env.store, queue=queue, objects=env.objects, settings=env.settings, republish=False)
    worker.start()
    try:
        assert env.wait_terminal(job.job_id).status is JobStatus.SUCCEEDED
        env.wait_for("the message to be deleted", lambda: env.queue_depth(own_url[priority]) == 0)
    finally:
        worker.stop(5.0)


def test_a_message_dead_lettered_from_any_priority_queue_is_redriven_to_its_own_queue(worker_env: WorkerEnv) -> None:
    """Every priority queue redrives to the one DLQ; its handler (here through the local poller, shaped as the
    Lambda event source mapping) publishes a job with attempts left afresh on the queue the message came from,
    and a worker then runs it."""
    env = worker_env
    dlq_url = env.settings.dead_letter_queue_url
    dlq_arn = env.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})
    urls = {
        priority: env.sqs.create_queue(
            QueueName=f"wk-dl-{priority.value}-{uuid.uuid4().hex[:8]}", Attributes={"RedrivePolicy": redrive}
        )["QueueUrl"]
        for priority in Priority
    }
    queue = sqs_priority_queue(env.sqs, urls)
    jobs = {priority: _submit(env, queue, priority, env.tmp / "runs.log") for priority in Priority}
    # Received once and never settled (a crashed worker): the next receive moves each message to the DLQ.
    for _ in range(2):
        for priority in Priority:
            queue.queues[priority].receive(max_messages=10, wait_s=0, visibility_timeout_s=0)
    assert env.queue_depth(dlq_url) == len(Priority)
    dead_letters = DeadLetterHandler(env.store, queue, max_attempts=env.settings.max_attempts)
    poller = DeadLetterPoller(
        env.sqs,
        dlq_url,
        lambda event, context: handle_event(event, context, dead_letters=dead_letters),
        region="us-east-1",
        wait_time_s=0,
    )
    handled = 0
    for _ in range(10):
        handled += poller.poll_once()
        if handled == len(Priority):
            break
    assert handled == len(Priority)
    for priority, job in jobs.items():
        redriven = env.job(job.job_id)
        assert (redriven.status, redriven.attempts, redriven.redrives) == (JobStatus.PENDING, 0, 1), priority
        assert env.queue_depth(urls[priority]) == 1, priority
    worker = Worker(store=env.store, queue=queue, objects=env.objects, settings=env.settings, republish=False)
    worker.start()
    try:
        for job in jobs.values():
            final = env.wait_terminal(job.job_id)
            assert (final.status, final.attempts) == (JobStatus.SUCCEEDED, 1)
    finally:
        worker.stop(5.0)
