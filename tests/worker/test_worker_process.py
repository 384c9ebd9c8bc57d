"""`python -m runtime.worker` as a process against moto: SIGKILL mid-job (another worker takes over and the
job succeeds exactly once), and SIGTERM (drains in-flight jobs, or releases them, and exits 0)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from runtime.domain.job import JobStatus
from tests.worker.conftest import WorkerEnv
from tests.worker.plugin_jobs import read_runs

EXIT_LIMIT_S = 30


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(EXIT_LIMIT_S)


def test_worker_killed_mid_job_is_taken_over_and_the_job_completes_once(worker_env: WorkerEnv) -> None:
    env = worker_env
    job, run_log, gate = env.submit_gated()
    first = env.start_worker_process("first")
    second: subprocess.Popen[bytes] | None = None
    try:
        env.wait_for("the first worker to start the job", lambda: len(read_runs(run_log)) == 1)
        assert env.job(job.job_id).status is JobStatus.PROCESSING
        first.send_signal(signal.SIGKILL)
        first.wait(EXIT_LIMIT_S)
        gate.touch()
        second = env.start_worker_process("second")
        done = env.wait_terminal(job.job_id)
        env.wait_for("the queue to drain", lambda: env.queue_depth() == 0)
    finally:
        stop(first)
        if second is not None:
            stop(second)
    runs = read_runs(run_log)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 2
    assert [(event, attempt) for event, _, attempt in runs] == [("start", 1), ("start", 2), ("done", 2)]
    assert runs[0][1] == str(first.pid) and runs[2][1] == str(second.pid)
    assert done.result == {"pid": second.pid, "attempt": 2}


def test_sigterm_finishes_in_flight_jobs_and_exits_zero(worker_env: WorkerEnv) -> None:
    env = worker_env
    job, run_log, gate = env.submit_gated()
    worker = env.start_worker_process("worker")
    try:
        env.wait_for("the worker to start the job", lambda: len(read_runs(run_log)) == 1)
        worker.send_signal(signal.SIGTERM)
        # The job is still held by its gate; opening it lets the draining worker finish within the deadline.
        env.wait_for("the worker to log the signal", lambda: any(e.get("event") == "worker_signal" for e in logs(env)))
        gate.touch()
        assert worker.wait(EXIT_LIMIT_S) == 0
    finally:
        stop(worker)
    done = env.job(job.job_id)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1
    assert [event for event, _, _ in read_runs(run_log)] == ["start", "done"]
    assert env.queue_depth() == 0  # the delete was flushed before exit
    stopped = [e for e in logs(env) if e.get("event") == "worker_stopped"]
    assert len(stopped) == 1 and stopped[0]["released"] == 0


def test_sigterm_past_the_deadline_releases_the_message_for_another_worker(worker_env: WorkerEnv) -> None:
    env = worker_env
    job, run_log, gate = env.submit_gated()
    first = env.start_worker_process("worker", JOBS_SHUTDOWN_DEADLINE_S="0.5")
    second: subprocess.Popen[bytes] | None = None
    try:
        env.wait_for("the worker to start the job", lambda: len(read_runs(run_log)) == 1)
        first.send_signal(signal.SIGTERM)
        assert first.wait(EXIT_LIMIT_S) == 0
        stopped = [e for e in logs(env) if e.get("event") == "worker_stopped"]
        assert len(stopped) == 1 and stopped[0]["released"] == 1
        gate.touch()
        second = env.start_worker_process("second")
        done = env.wait_terminal(job.job_id)
    finally:
        stop(first)
        if second is not None:
            stop(second)
    # The release handed the attempt back: the second worker's run is attempt 1 again.
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1
    assert [(event, attempt) for event, _, attempt in read_runs(run_log)] == [("start", 1), ("start", 1), ("done", 1)]


def logs(env: WorkerEnv, name: str = "worker") -> list[dict[str, object]]:
    path: Path = env.tmp / f"{name}.log"
    return env.process_log(name) if path.exists() else []
