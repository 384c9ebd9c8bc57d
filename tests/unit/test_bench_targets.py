"""The benchmark's issue-13 verdicts (Celery ratio, CPU against the floor, steady requests) from hand-made
results: the figure printed, the ratio computed against the right denominator, PASS and FAIL on each side."""

from __future__ import annotations

import importlib

from botocore.client import BaseClient

from benchmarks.bench_celery import CeleryRun
from benchmarks.bench_main import (
    MOTO_ROLE,
    BurstRun,
    Results,
    our_cpu_ms_per_job,
    report_celery,
    report_cpu,
)


def burst(jobs_per_s: float, completed: int, cpu_by_role: dict[str, float]) -> BurstRun:
    return BurstRun(
        jobs=completed,
        completed=completed,
        statuses={"SUCCEEDED": completed},
        jobs_per_s=jobs_per_s,
        latencies_s=[0.1],
        submit_wall_s=1.0,
        calls={"submit": {"dynamodb.PutItem": completed}, "worker": {"dynamodb.UpdateItem": 2 * completed}},
        calls_by_role={},
        log_bytes=0,
        log_lines=0,
        log_kinds={},
        loadgen_cpu_share=0.0,
        cpu_by_role=cpu_by_role,
        wall_s=10.0,
        max_queue_depth=0,
    )


def celery(tasks_per_s: float) -> CeleryRun:
    calls = {"other": {"sqs.SendMessage": 100, "dynamodb.PutItem": 100, "sqs.DeleteMessage": 100}}
    return CeleryRun(tasks=100, completed=100, tasks_per_s=tasks_per_s, calls=calls, worker_completed=101, cpu_s=1.0)


def lines_of(results: Results, report: object) -> list[str]:
    printed: list[str] = []
    report(results, printed.append)  # type: ignore[operator]
    return printed


def test_our_cpu_per_job_leaves_the_emulator_out() -> None:
    run = burst(10.0, 100, {"api": 0.3, "worker": 0.5, "dlq poller": 0.0, MOTO_ROLE: 9.0})
    assert our_cpu_ms_per_job(run) == 8.0


def test_celery_ratio_passes_at_or_above_one_and_fails_below() -> None:
    results = Results(celery=[celery(20.0)], ours_noop=[burst(25.0, 100, {})])
    printed = lines_of(results, report_celery)
    assert any("requests per task" in line and "3.00" in line for line in printed)
    assert printed[-1].strip().startswith("ours / celery e2e = 1.25x") and printed[-1].endswith("PASS")

    results.ours_noop = [burst(10.0, 100, {})]
    assert lines_of(results, report_celery)[-1].strip().startswith("ours / celery e2e = 0.50x")
    assert lines_of(results, report_celery)[-1].endswith("FAIL")


def test_cpu_ratios_are_against_the_floor_measured_in_the_run() -> None:
    results = Results(
        cpu_floor_ms=[4.0, 4.0],
        posts_paused=[{"api_cpu_ms_per_post": 5.0}],
        bursts=[burst(10.0, 100, {"api": 0.4, "worker": 0.6, MOTO_ROLE: 5.0})],
    )
    printed = lines_of(results, report_cpu)
    post = next(line for line in printed if "per POST" in line)
    job = next(line for line in printed if "per completed job" in line)
    assert "1.25x the floor" in post and post.endswith("PASS")
    assert "10.00 CPU ms" in job and "2.50x the floor" in job and job.endswith("FAIL")


def test_no_floor_no_cpu_section() -> None:
    assert lines_of(Results(posts_paused=[{"api_cpu_ms_per_post": 5.0}]), report_cpu) == []


def test_importing_the_celery_app_leaves_botocore_counting_once() -> None:
    # The Celery app patches botocore process-wide to count Celery's calls; only its own processes may get that.
    importlib.import_module("benchmarks.bench_celery_app")  # imported already by bench_celery above, too
    assert BaseClient._make_api_call.__qualname__ == "BaseClient._make_api_call"  # botocore's own, unpatched
