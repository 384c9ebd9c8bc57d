"""Batch submit versus single submits (issue 10, point 8): how many jobs per second the local all-in-one accepts
through POST /api/v1/jobs/batch and through POST /api/v1/jobs, each mode on a fresh all-in-one with its worker
paused (so moto serves only the submit path and both modes start from an empty queue)."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks import bench_load
from benchmarks.bench_stack import Calls, LocalStack, paused, subtract
from runtime.api.routes_jobs import BATCH_PATH
from runtime.api.schemas import MAX_BATCH_JOBS

SINGLE_CLIENTS = 16  # as the POST scenario
BATCH_CLIENTS = 4  # each request carries MAX_BATCH_JOBS jobs: a few at once keep the API busy
BATCH_TIMEOUT_S = 60.0
DUMP_SETTLE_S = 1.6  # the call files are rewritten every second

Out = Callable[[str], None]
BodyFor = Callable[[str, int], dict[str, Any]]


@dataclass(frozen=True)
class ModeRun:
    mode: str
    jobs: int
    accepted: int  # 201 answers (per job)
    wall_s: float
    request_p50_ms: float
    request_p99_ms: float
    calls_per_job: dict[str, float]

    @property
    def jobs_per_s(self) -> float:
        return self.accepted / self.wall_s if self.wall_s else 0.0


def _percentile_ms(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def _singles(stack: LocalStack, bodies: list[dict[str, Any]]) -> tuple[int, float, list[float]]:
    load = bench_load.burst(stack.api_url, bodies, concurrency=SINGLE_CLIENTS, headers=stack.auth_headers)
    return sum(1 for item in load.submitted if item.status == 201), load.wall_s, [i.latency_s for i in load.submitted]


def _batches(stack: LocalStack, bodies: list[dict[str, Any]]) -> tuple[int, float, list[float]]:
    chunks = [bodies[start : start + MAX_BATCH_JOBS] for start in range(0, len(bodies), MAX_BATCH_JOBS)]
    limits = httpx.Limits(max_connections=BATCH_CLIENTS, max_keepalive_connections=BATCH_CLIENTS)
    with httpx.Client(
        base_url=stack.api_url, limits=limits, timeout=BATCH_TIMEOUT_S, headers=stack.auth_headers
    ) as client:

        def post(chunk: list[dict[str, Any]]) -> tuple[int, float]:
            started = time.perf_counter()
            response = client.post(BATCH_PATH, json={"jobs": chunk})
            latency = time.perf_counter() - started
            if response.status_code != 200:
                return 0, latency
            return sum(1 for result in response.json()["results"] if result["status"] == 201), latency

        started = time.perf_counter()
        with ThreadPoolExecutor(BATCH_CLIENTS, "batch") as pool:
            answers = list(pool.map(post, chunks))
        wall_s = time.perf_counter() - started
    return sum(accepted for accepted, _ in answers), wall_s, [latency for _, latency in answers]


def measure_mode(
    mode: str, stack_env: dict[str, str], body_for: BodyFor, jobs: int, prepare: Callable[[LocalStack], str]
) -> ModeRun:
    """One mode on a fresh all-in-one: `prepare` readies it (uploads the source document) and returns its bucket."""
    with LocalStack(env=stack_env) as stack:
        bucket = prepare(stack)
        run = uuid.uuid4().hex[:6]
        bodies = [body_for(bucket, index) | {"metadata": {"run": run}} for index in range(jobs)]
        with paused(stack.pid_of("worker")):
            time.sleep(DUMP_SETTLE_S)
            before: Calls = stack.calls_by_role().get("api", {})
            accepted, wall_s, latencies = (_batches if mode == "batch" else _singles)(stack, bodies)
            time.sleep(DUMP_SETTLE_S)
            made = subtract(stack.calls_by_role().get("api", {}), before).get("submit", {})
    return ModeRun(
        mode,
        jobs,
        accepted,
        wall_s,
        _percentile_ms(latencies, 0.5),
        _percentile_ms(latencies, 0.99),
        {operation: count / max(accepted, 1) for operation, count in sorted(made.items())},
    )


def _row(run: ModeRun) -> str:
    calls = ", ".join(f"{operation} {count:.2f}" for operation, count in run.calls_per_job.items())
    return (
        f"{run.accepted}/{run.jobs} accepted in {run.wall_s:.1f} s = {run.jobs_per_s:.1f} jobs/s, "
        f"request p50 {run.request_p50_ms:.0f} ms p99 {run.request_p99_ms:.0f} ms; per job: {calls}"
    )


def scenario_batch(
    out: Out,
    repeats: int,
    jobs: int,
    *,
    stack_env: dict[str, str],
    body_for: BodyFor,
    prepare: Callable[[LocalStack], str],
) -> list[tuple[ModeRun, ModeRun]]:
    """`jobs` process_document jobs per mode and repeat; prints each run, then the medians and their ratio."""
    runs: list[tuple[ModeRun, ModeRun]] = []
    for repeat in range(repeats):
        single = measure_mode("single", stack_env, body_for, jobs, prepare)
        out(f"  single run {repeat + 1} ({SINGLE_CLIENTS} clients, POST /api/v1/jobs): {_row(single)}")
        batch = measure_mode("batch", stack_env, body_for, jobs, prepare)
        out(
            f"  batch  run {repeat + 1} ({BATCH_CLIENTS} clients, {MAX_BATCH_JOBS} jobs per POST {BATCH_PATH}): "
            f"{_row(batch)}"
        )
        runs.append((single, batch))
    single_rate = statistics.median(single.jobs_per_s for single, _ in runs)
    batch_rate = statistics.median(batch.jobs_per_s for _, batch in runs)
    ratio = batch_rate / single_rate if single_rate else float("inf")
    out(
        f"  BATCH vs SINGLE (median of {repeats}, worker paused): batch {batch_rate:.1f} jobs/s, "
        f"single {single_rate:.1f} jobs/s, ratio {ratio:.2f}x"
    )
    return runs
