"""Cancel with the real worker against moto over HTTP (visibility 2 s, so the heartbeat renews leases every
2/3 s): a canceled PENDING job never runs, a running job ends CANCELED within the documented bound, cancel racing
completion ends in one consistent terminal state, and a CANCELED job retried by hand runs."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from runtime.domain.job import JobStatus
from runtime.domain.ports import UtcClock
from runtime.domain.submit import CancelResult, JobNotCancelable, JobService
from runtime.worker.runner import Worker
from tests.worker.conftest import TENANT, WorkerEnv
from tests.worker.plugin_jobs import read_runs

# Moto over HTTP on a shared 2-core machine answers slowly at times: the margin over the bound covers the
# handler's next check (50 ms), the final write and this test's polling of the job.
MARGIN_S = 3.0


def service(env: WorkerEnv) -> JobService:
    return JobService(
        env.store,
        env.queue,
        UtcClock(),
        retention_s=86_400,
        idempotency_ttl_s=86_400,
        submit_in_flight_s=10.0,
        retry_republish_after_s=env.settings.retry_republish_after_s,
    )


@contextmanager
def running(env: WorkerEnv) -> Iterator[Worker]:
    worker = Worker(store=env.store, queue=env.queue, objects=env.objects, settings=env.settings, republish=False)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(5.0)


def events(run_log: str) -> list[str]:
    return [event for event, _, _ in read_runs(run_log)]


def test_a_canceled_pending_job_never_runs_and_its_message_is_deleted(worker_env: WorkerEnv) -> None:
    env = worker_env
    run_log = str(env.tmp / "pending.log")
    job = env.submit("test_cancelable", {"run_log": run_log, "hold_s": 0})
    result = service(env).cancel(job.job_id, tenant=TENANT)
    assert result.done and result.job.status is JobStatus.CANCELED
    assert env.queue_depth() == 1  # its message is still there
    with running(env):
        env.wait_for("the message to be deleted", lambda: env.queue_depth() == 0)
    after = env.job(job.job_id)
    assert after.status is JobStatus.CANCELED and after.attempts == 0 and "PROCESSING" not in after.transitions
    assert events(run_log) == []


def test_a_running_job_ends_canceled_within_the_documented_bound(worker_env: WorkerEnv) -> None:
    env = worker_env
    bound_s = env.settings.cancel_notice_bound_s
    run_log = str(env.tmp / "running.log")
    job = env.submit("test_cancelable", {"run_log": run_log, "hold_s": 60})
    with running(env):
        env.wait_for("the handler to start", lambda: events(run_log) == ["start"])
        # Past a few lease renewals, so that the cancel meets the steady state of a long job.
        time.sleep(2 * env.settings.cancel_check_interval_s)
        requested_at = time.monotonic()
        result = service(env).cancel(job.job_id, tenant=TENANT)
        assert not result.done and result.job.cancel_requested and result.job.status is JobStatus.PROCESSING
        env.wait_for("the job to end", lambda: env.job(job.job_id).is_terminal, limit_s=bound_s + 30)
        took_s = time.monotonic() - requested_at
        env.wait_for("the message to be deleted", lambda: env.queue_depth() == 0)
    after = env.job(job.job_id)
    assert after.status is JobStatus.CANCELED and after.result is None and after.attempts == 1
    assert events(run_log) == ["start", "canceled"]
    assert took_s <= bound_s + MARGIN_S, f"canceled after {took_s:.2f} s, the bound is {bound_s:.2f} s"


def cancel_after(env: WorkerEnv, job_id: str, delay_s: float) -> CancelResult | JobStatus:
    """The cancel's answer, or the status that made it 409 (the job ended first)."""
    time.sleep(delay_s)  # where in the job's life the cancel lands: the point of the race
    try:
        return service(env).cancel(job_id, tenant=TENANT)
    except JobNotCancelable as exc:
        return exc.job.status


def test_cancel_racing_completion_ends_in_one_consistent_terminal_state(worker_env: WorkerEnv) -> None:
    env = worker_env
    rng = random.Random(11)
    rounds: list[tuple[Any, str, str, float]] = []
    for index in range(25):
        run_log = str(env.tmp / f"race-{index}.log")
        on_cancel = rng.choice(["raise", "return"])
        hold_s = rng.choice([0.0, 0.05, 0.3, 0.8, 1.5])
        job = env.submit("test_cancelable", {"run_log": run_log, "hold_s": hold_s, "on_cancel": on_cancel})
        rounds.append((job, run_log, on_cancel, rng.choice([0.0, 0.05, 0.2, 0.5, 1.0, 1.5])))
    with running(env), ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda r: cancel_after(env, r[0].job_id, r[3]), rounds))
        for job, _, _, _ in rounds:
            env.wait_terminal(job.job_id)
        env.wait_for("every message to be deleted", lambda: env.queue_depth() == 0)
    outcomes = {"canceled_at_once": 0, "canceled_running": 0, "succeeded": 0}
    for (job, run_log, _, _), answer in zip(rounds, answers, strict=True):
        final = env.job(job.job_id)
        seen = events(run_log)
        assert final.status in (JobStatus.CANCELED, JobStatus.SUCCEEDED), (final, answer, seen)
        assert final.attempts <= 1 and seen.count("start") == final.attempts  # never run twice, never retried
        assert final.error is None
        if isinstance(answer, JobStatus):
            # The job had ended before the cancel: 409, and its real outcome stays.
            outcomes["succeeded"] += 1
            assert answer is JobStatus.SUCCEEDED and final.status is JobStatus.SUCCEEDED and not final.cancel_requested
            assert seen == ["start", "done"]
        elif answer.done and answer.job.status is JobStatus.CANCELED:
            # Canceled while PENDING: it never ran.
            outcomes["canceled_at_once"] += 1
            assert final.status is JobStatus.CANCELED and seen == [] and final.attempts == 0
        elif final.status is JobStatus.SUCCEEDED:
            # The handler ended before the worker noticed the request (or the job was done before the cancel):
            # its real outcome stays and the request changed nothing else.
            outcomes["succeeded"] += 1
            assert final.result is not None and final.result["stopped"] is False and seen == ["start", "done"]
            assert not answer.done and final.cancel_requested
        else:
            # The worker noticed the request before the handler's outcome existed: CANCELED, no result kept.
            outcomes["canceled_running"] += 1
            assert final.status is JobStatus.CANCELED and final.result is None and final.cancel_requested
            assert seen[0] == "start" and len(seen) == 2
    assert sum(outcomes.values()) == len(rounds)


def test_a_canceled_job_retried_by_hand_runs(worker_env: WorkerEnv) -> None:
    env = worker_env
    run_log = str(env.tmp / "retried.log")
    job = env.submit("test_cancelable", {"run_log": run_log, "hold_s": 0})
    jobs = service(env)
    assert jobs.cancel(job.job_id, tenant=TENANT).job.status is JobStatus.CANCELED
    retried = jobs.retry(job.job_id, tenant=TENANT)
    assert retried.published and retried.job.status is JobStatus.PENDING
    with running(env):
        final = env.wait_terminal(job.job_id)
    assert final.status is JobStatus.SUCCEEDED and final.attempts == 1
    assert events(run_log) == ["start", "done"]
    assert {"PENDING", "CANCELED", "PROCESSING", "SUCCEEDED"} <= set(final.transitions)
