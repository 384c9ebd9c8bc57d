"""A release (the worker stopping with a job still held: shutdown, drain, scale-in) costs the job neither an
attempt nor a receive towards the DLQ: the job's lease is cleared and its attempt handed back in one conditional
write, a fresh copy of the message (same queue, same trace header) is published and the old one deleted. Against
moto over HTTP with the production redrive limit (3 receives) and max_attempts (3)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from runtime.domain.job import JobStatus
from runtime.domain.ports import JobMessage
from runtime.worker.runner import Worker
from tests.worker.conftest import WorkerEnv, make_worker_env
from tests.worker.plugin_jobs import read_runs

# The production queue's redrive limit (stacks: maxReceiveCount 3), equal to the default max_attempts.
MAX_RECEIVE_COUNT = 3


def production_like(moto_server: str, tmp_path: Path) -> WorkerEnv:
    env = make_worker_env(moto_server, tmp_path, max_receive_count=MAX_RECEIVE_COUNT)
    assert env.settings.max_attempts == MAX_RECEIVE_COUNT
    return env


def dead_letters(env: WorkerEnv) -> int:
    return env.queue_depth(env.settings.dead_letter_queue_url)


def hold_and_release(env: WorkerEnv, run_log: str, starts: int) -> None:
    """A worker takes the job, its handler holds (gate closed), and the worker stops past its deadline."""
    worker = Worker(store=env.store, queue=env.queue, objects=env.objects, settings=env.settings, republish=False)
    worker.start()
    try:
        env.wait_for(
            f"start number {starts} (or the message in the DLQ)",
            lambda: [e for e, _, _ in read_runs(run_log)].count("start") == starts or dead_letters(env) > 0,
        )
        assert dead_letters(env) == 0, f"dead-lettered after {starts - 1} releases"
    finally:
        assert worker.stop(0.2) is False  # the job was still running: released
    # stop() does not wait out a long poll under way; one that brings the fresh copy back releases it again.
    assert worker._receiver is not None
    worker._receiver.join(10)
    assert not worker._receiver.is_alive()


def test_a_job_released_three_times_then_failing_once_still_succeeds(moto_server: str, tmp_path: Path) -> None:
    env = production_like(moto_server, tmp_path)
    gate = tmp_path / "gate"
    run_log = str(tmp_path / "runs.log")
    job = env.submit("test_slow", {"run_log": run_log, "gate": str(gate), "fail_attempts": 1})
    after_releases = []
    for release in range(1, 4):
        hold_and_release(env, run_log, starts=release)
        released = env.job(job.job_id)
        after_releases.append((released.status, released.attempts, released.lease_expires_at, env.queue_depth()))
    gate.touch()  # the three abandoned handlers end now too; none of their outcomes may land
    worker = Worker(store=env.store, queue=env.queue, objects=env.objects, settings=env.settings, republish=False)
    worker.start()
    try:
        env.wait_for(
            "the job to end (or its message to reach the DLQ)",
            lambda: env.job(job.job_id).is_terminal or dead_letters(env) > 0,
        )
        assert dead_letters(env) == 0, "the job's message was dead-lettered"
        done = env.wait_terminal(job.job_id)
        env.wait_for("the queue to drain", lambda: env.queue_depth() == 0)
    finally:
        worker.stop(5.0)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 2 and "FAILED_FINAL" not in done.transitions
    assert done.result is not None and done.result["attempt"] == 2
    # Each release handed the job back: still PROCESSING (nobody runs it), no attempt counted, the lease already
    # over, and one message (the fresh copy; the old one deleted).
    assert after_releases == [(JobStatus.PROCESSING, 0, datetime.fromtimestamp(0, UTC), 1)] * 3
    runs = [(event, attempt) for event, _, attempt in read_runs(run_log)]
    # Three released starts, each at attempt 1 (a release does not count); their late ends wrote nothing.
    assert runs[:3] == [("start", 1)] * 3 and runs.count(("failed", 1)) == 4
    assert runs[-2:] == [("start", 2), ("done", 2)]


def test_the_fresh_message_goes_to_the_same_queue_and_starts_its_receive_count_over(
    moto_server: str, tmp_path: Path
) -> None:
    env = production_like(moto_server, tmp_path)
    gate = tmp_path / "gate"
    run_log = str(tmp_path / "runs.log")
    job = env.submit("test_slow", {"run_log": run_log, "gate": str(gate)})
    try:
        hold_and_release(env, run_log, starts=1)
        (fresh,) = env.queue.receive(max_messages=10, wait_s=1, visibility_timeout_s=30)
    finally:
        gate.touch()
    assert fresh.message == JobMessage(job_id=job.job_id, trace_id=job.trace_id)
    # (The trace header it keeps: tests/unit/test_worker_release.py and tests/adapters/test_sqs_queue.py; moto
    # drops the system attributes of SendMessageBatch entries.)
    assert fresh.receive_count == 1
    assert env.queue.receive(max_messages=10, wait_s=0, visibility_timeout_s=30) == []  # the old one is gone
    assert env.job(job.job_id).attempts == 0


def test_a_duplicate_message_of_a_running_job_is_a_harmless_no_op(moto_server: str, tmp_path: Path) -> None:
    # What a crash between a release's publish and its delete leaves behind.
    env = production_like(moto_server, tmp_path)
    job, run_log, gate = env.submit_gated()
    env.queue.send(JobMessage(job_id=job.job_id, trace_id=job.trace_id))
    workers = [
        Worker(store=env.store, queue=env.queue, objects=env.objects, settings=env.settings, republish=False)
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        env.wait_for("the job to start", lambda: len(read_runs(run_log)) == 1)
        gate.touch()
        done = env.wait_terminal(job.job_id)
        env.wait_for("both messages to be deleted", lambda: env.queue_depth() == 0)
    finally:
        for worker in workers:
            worker.stop(5.0)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1
    assert [event for event, _, _ in read_runs(run_log)] == ["start", "done"]
    assert env.queue_depth(env.settings.dead_letter_queue_url) == 0
