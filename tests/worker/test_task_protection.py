"""The worker's scale-in protection end to end: the real worker on moto talks to a real HTTP server standing in
for the ECS agent. Protected while a job runs, unprotected when idle and on stop; an unreachable or hanging
agent neither blocks nor fails jobs; without ECS_AGENT_URI no call at all."""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from runtime.domain.job import JobStatus
from runtime.settings import load_settings
from runtime.worker.runner import Worker
from tests.conftest import free_port
from tests.worker.conftest import WorkerEnv
from tests.worker.ecs_agent import AGENT_PATH, AgentRequest, FakeEcsAgent
from tests.worker.plugin_jobs import read_runs

# The tests' heartbeat runs every 2/3 s (visibility 2 s): the protection gets the one-minute minimum.
EXPIRES_IN_MINUTES = 1
STATE_PATH = f"{AGENT_PATH}/task-protection/v1/state"
PROTECT = AgentRequest(
    "PUT", STATE_PATH, "application/json", {"ProtectionEnabled": True, "ExpiresInMinutes": EXPIRES_IN_MINUTES}
)
UNPROTECT = AgentRequest("PUT", STATE_PATH, "application/json", {"ProtectionEnabled": False})
EXIT_LIMIT_S = 30
QUICK_JOB = {"records": [{"a": "x"}], "operations": [{"op": "uppercase", "fields": ["a"]}]}


@pytest.fixture
def agent() -> Iterator[FakeEcsAgent]:
    server = FakeEcsAgent()
    yield server
    server.close()


@contextmanager
def running(env: WorkerEnv, agent_uri: str | None) -> Iterator[Worker]:
    settings = env.settings.model_copy(update={"ecs_agent_uri": agent_uri})
    worker = Worker(store=env.store, queue=env.queue, objects=env.objects, settings=settings, republish=False)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(5.0)


def events(out: str, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == name]


def failure_metrics(out: str) -> float:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return sum(float(line["TaskProtectionFailures"]) for line in lines if "TaskProtectionFailures" in line)


def test_worker_protects_its_task_while_a_job_runs_and_unprotects_when_idle(
    worker_env: WorkerEnv, agent: FakeEcsAgent
) -> None:
    env = worker_env
    job, run_log, gate = env.submit_gated()
    with running(env, agent.url):
        env.wait_for("the job to start", lambda: len(read_runs(run_log)) == 1)
        env.wait_for("the task to be protected", lambda: len(agent.requests()) >= 1)
        assert agent.requests() == [PROTECT]
        assert env.job(job.job_id).status is JobStatus.PROCESSING  # protected while the job runs
        gate.touch()
        assert env.wait_terminal(job.job_id).status is JobStatus.SUCCEEDED
        env.wait_for("the task to be unprotected", lambda: len(agent.requests()) >= 2)
    # Nothing redundant: one protect on idle -> busy, one unprotect on busy -> idle, none at stop (idle already).
    assert agent.requests() == [PROTECT, UNPROTECT]


def test_worker_stopped_with_a_job_still_running_unprotects_its_task(
    worker_env: WorkerEnv, agent: FakeEcsAgent
) -> None:
    env = worker_env
    _, run_log, gate = env.submit_gated()
    settings = env.settings.model_copy(update={"ecs_agent_uri": agent.url})
    worker = Worker(store=env.store, queue=env.queue, objects=env.objects, settings=settings, republish=False)
    worker.start()
    try:
        env.wait_for("the job to start", lambda: len(read_runs(run_log)) == 1)
        env.wait_for("the task to be protected", lambda: len(agent.requests()) >= 1)
        # Past the deadline the job's message is released for another worker: this task holds nothing to keep.
        assert worker.stop(0.2) is False
        assert agent.requests() == [PROTECT, UNPROTECT]
    finally:
        gate.touch()  # lets the abandoned job thread end
    env.wait_for("the abandoned job thread to end", lambda: worker.in_flight == 0)
    assert [event for event, _, _ in read_runs(run_log)] == ["start", "done"]
    assert agent.requests() == [PROTECT, UNPROTECT]  # the job thread ending after stop sends nothing


def test_unreachable_agent_neither_blocks_nor_fails_jobs(
    worker_env: WorkerEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env = worker_env
    closed = f"http://127.0.0.1:{free_port()}{AGENT_PATH}"  # nothing listens there
    jobs = [env.submit("transform_data", QUICK_JOB) for _ in range(3)]
    with running(env, closed) as worker:
        done = [env.wait_terminal(job.job_id) for job in jobs]
        env.wait_for("the worker to go idle", lambda: worker.in_flight == 0)
    assert [job.status for job in done] == [JobStatus.SUCCEEDED] * 3
    out = capsys.readouterr().out
    failures = events(out, "task_protection_failed")
    assert failures and all(f["level"] == "warning" and "refused" in f["error"].lower() for f in failures)
    assert failure_metrics(out) == len(failures)


def test_hanging_agent_neither_blocks_nor_fails_jobs(worker_env: WorkerEnv, capsys: pytest.CaptureFixture[str]) -> None:
    env = worker_env
    agent = FakeEcsAgent(hang=True)
    jobs = [env.submit("transform_data", QUICK_JOB) for _ in range(3)]
    settings = env.settings.model_copy(update={"ecs_agent_uri": agent.url})
    worker = Worker(store=env.store, queue=env.queue, objects=env.objects, settings=settings, republish=False)
    worker.start()
    try:
        done = [env.wait_terminal(job.job_id) for job in jobs]
        # Every job finished while the agent had answered no request at all.
        assert agent.requests() and agent.requests()[0] == PROTECT
        env.wait_for("the worker to go idle", lambda: worker.in_flight == 0)
    finally:
        # Waits for at most the PUT under way and the final unprotect, each cut off by the timeout.
        stopped = worker.stop(5.0)
        agent.close()
    assert [job.status for job in done] == [JobStatus.SUCCEEDED] * 3
    assert stopped is True
    out = capsys.readouterr().out
    failures = events(out, "task_protection_failed")
    assert failures and all("timed out" in f["error"] for f in failures)
    assert failure_metrics(out) == len(failures)


def test_without_ecs_agent_uri_the_worker_makes_no_protection_calls(
    worker_env: WorkerEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = worker_env
    monkeypatch.delenv("ECS_AGENT_URI", raising=False)
    # The settings as the worker's main parses them, from an environment without ECS_AGENT_URI.
    settings = load_settings(
        table_name=env.settings.table_name,
        access_table_name=env.settings.access_table_name,
        queue_url=env.settings.queue_url,
        dead_letter_queue_url=env.settings.dead_letter_queue_url,
        documents_bucket=env.settings.documents_bucket,
        AWS_ENDPOINT_URL=env.endpoint,
        visibility_timeout_s=env.settings.visibility_timeout_s,
        receive_wait_s=1,
    )
    assert settings.ecs_agent_uri is None
    job, run_log, gate = env.submit_gated()
    with running(dataclasses.replace(env, settings=settings), None):
        env.wait_for("the job to start", lambda: len(read_runs(run_log)) == 1)
        assert "task-protection" not in {t.name for t in threading.enumerate()}
        gate.touch()
        assert env.wait_terminal(job.job_id).status is JobStatus.SUCCEEDED
    assert "task_protection" not in capsys.readouterr().out


def test_worker_process_reads_ecs_agent_uri_and_unprotects_after_draining(
    worker_env: WorkerEnv, agent: FakeEcsAgent
) -> None:
    env = worker_env
    job, _, gate = env.submit_gated()
    worker = env.start_worker_process("worker", ECS_AGENT_URI=agent.url)
    try:
        env.wait_for("the task to be protected", lambda: len(agent.requests()) >= 1)
        worker.send_signal(signal.SIGTERM)
        env.wait_for(
            "the worker to log the signal",
            lambda: any(e.get("event") == "worker_signal" for e in env.process_log("worker")),
        )
        assert agent.requests() == [PROTECT]  # still protected while it drains the running job
        gate.touch()
        assert worker.wait(EXIT_LIMIT_S) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(EXIT_LIMIT_S)
    assert env.job(job.job_id).status is JobStatus.SUCCEEDED
    assert agent.requests() == [PROTECT, UNPROTECT]
