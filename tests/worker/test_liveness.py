"""Issue 11, defect 10: a hung worker fails its container health check. The receive loop touches the liveness
file as it turns (idle or with every slot busy), and `python -m runtime.worker.healthcheck` fails once the file
is older than its bound or absent."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.worker import healthcheck
from runtime.worker.liveness import IDLE_BEAT_S, MAX_AGE_S, Liveness, age_s
from runtime.worker.runner import Worker
from tests.worker.conftest import REPO, WorkerEnv
from tests.worker.plugin_jobs import read_runs


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _make_old(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_beat_touches_the_file_at_most_once_per_interval(tmp_path: Path) -> None:
    path, clock = tmp_path / "alive", FakeClock()
    liveness = Liveness(path, min_interval_s=1.0, clock=clock)
    liveness.beat()
    assert path.exists()
    _make_old(path, 50)
    clock.now += 0.5
    liveness.beat()  # within the interval: not touched again
    age = age_s(path)
    assert age is not None and age >= 49
    clock.now += 0.5
    liveness.beat()
    age = age_s(path)
    assert age is not None and age < 5


def test_an_unwritable_file_is_reported_once_and_never_raises(tmp_path: Path) -> None:
    clock, errors = FakeClock(), []
    liveness = Liveness(tmp_path / "missing-dir" / "alive", clock=clock, on_error=errors.append)
    for _ in range(3):
        liveness.beat()
        clock.now += 2
    assert len(errors) == 1 and isinstance(errors[0], OSError)


def test_the_health_check_passes_on_a_fresh_file_and_fails_on_a_stale_or_missing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "alive"
    assert healthcheck.main(["--file", str(path)]) == healthcheck.UNHEALTHY
    assert "no liveness file" in capsys.readouterr().out
    path.touch()
    assert healthcheck.main(["--file", str(path)]) == healthcheck.HEALTHY
    _make_old(path, MAX_AGE_S + 5)
    assert healthcheck.main(["--file", str(path)]) == healthcheck.UNHEALTHY
    assert "last turned" in capsys.readouterr().out
    assert healthcheck.main(["--file", str(path), "--max-age-s", str(MAX_AGE_S + 60)]) == healthcheck.HEALTHY


def test_the_health_check_command_reads_the_file_the_environment_names(tmp_path: Path) -> None:
    # As the container runs it: a fresh interpreter, the path from JOBS_LIVENESS_FILE, the verdict as exit code.
    path = tmp_path / "alive"
    env = {**os.environ, "JOBS_LIVENESS_FILE": str(path)}
    command = [sys.executable, "-m", "runtime.worker.healthcheck"]
    assert subprocess.run(command, env=env, cwd=REPO, capture_output=True, check=False).returncode == 1
    path.touch()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
    _make_old(path, MAX_AGE_S + 1)
    assert subprocess.run(command, env=env, cwd=REPO, capture_output=True, check=False).returncode == 1


def _touched_again(path: Path, env: WorkerEnv, *, within_s: float) -> None:
    _make_old(path, 60)
    env.wait_for("the receive loop to touch the liveness file", lambda: (age_s(path) or 99) < 30, limit_s=within_s)


def test_the_receive_loop_touches_the_file_idle_and_with_every_slot_busy(worker_env: WorkerEnv) -> None:
    env, path = worker_env, worker_env.tmp / "alive"
    settings = env.settings.model_copy(update={"worker_concurrency": 1})
    worker = Worker(
        store=env.store,
        queue=env.queue,
        objects=env.objects,
        settings=settings,
        republish=False,
        liveness=Liveness(path),
    )
    job, run_log, gate = env.submit_gated()
    worker.start()
    try:
        env.wait_for("the worker to start the job", lambda: len(read_runs(run_log)) == 1)
        # The one slot is busy with a job that holds: the loop waits for a free slot and still shows it lives.
        assert worker.in_flight == 1
        _touched_again(path, env, within_s=IDLE_BEAT_S + 5)
        gate.touch()
        env.wait_terminal(job.job_id)
        # Idle: the receive loop turns with each (short, in these tests) long poll.
        _touched_again(path, env, within_s=env.settings.receive_wait_s + 5)
    finally:
        worker.stop(5.0)


def test_the_worker_process_keeps_its_health_check_passing(worker_env: WorkerEnv) -> None:
    env, path = worker_env, worker_env.tmp / "process.alive"
    process = env.start_worker_process("worker", JOBS_LIVENESS_FILE=str(path))
    try:
        env.wait_for("the worker to touch its liveness file", path.exists)
        _touched_again(path, env, within_s=env.settings.receive_wait_s + 5)
        check = subprocess.run(
            [sys.executable, "-m", "runtime.worker.healthcheck"],
            env=env.process_env(JOBS_LIVENESS_FILE=str(path)),
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout
    finally:
        process.terminate()
        process.wait(30)
