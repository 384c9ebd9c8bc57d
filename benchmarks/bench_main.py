"""The benchmark's scenarios and report (issue 5): AWS requests and dollars per job, end-to-end throughput and
latency, POST load, worker concurrency, and the emulator's ceiling, each scenario on a fresh all-in-one."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks import bench_load
from benchmarks.bench_batch import scenario_batch
from benchmarks.bench_celery import CeleryRun, measure_celery
from benchmarks.bench_emulator import Ceiling, aws_client, measure_ceiling, measure_cpu_floor
from benchmarks.bench_io_job import IO_WAIT_TYPE
from benchmarks.bench_memory import scenario_memory
from benchmarks.bench_pricing import (
    CostLine,
    JobItemStates,
    PriceTable,
    gsis_from_description,
    item_size,
    price_per_job,
    read_units,
    write_cost,
)
from benchmarks.bench_replay import REPLAY_THREADS, Replay, measure_replay, measure_submit_replay
from benchmarks.bench_stack import POLL_S, Calls, LocalStack, Resources, machine_busy_s, merge, paused, subtract
from benchmarks.bench_stats import median_of, percentile, summarize_latencies
from runtime.adapters.dynamodb.access_store import DynamoDbAccessStore
from runtime.adapters.dynamodb.codec import key
from runtime.adapters.dynamodb.schema import INDEXES, TABLE_KEY, Attr
from runtime.admin.access import AccessAdmin
from runtime.api.schemas import MAX_BATCH_JOBS
from runtime.domain.ports import UtcClock
from runtime.domain.times import parse_iso
from runtime.job_types.confinement import tenant_prefix
from runtime.local import LOCAL_TENANT
from runtime.settings import Settings

IO_PLUGIN = "benchmarks.bench_io_job"
TERMINAL = ("SUCCEEDED", "FAILED_FINAL")
DRAIN_TIMEOUT_S = 180.0
DUMP_SETTLE_S = 1.6
AUTH_CACHE_TTL_S = Settings.model_fields["api_key_cache_ttl_s"].default  # the all-in-one runs the default
EARLY_WINDOW_S = 5.0
EMULATOR_SATURATED_CORES = 0.8  # the call files are rewritten every second

# Targets of issue 5 (reference: 26.5 POST/s, p99 927 ms), requests and dollars tightened by issue 13.
TARGET_REQUESTS_PER_JOB = 2.5  # at burst
TARGET_REQUESTS_PER_JOB_STEADY = 4.0  # at a steady ~10 jobs/s (idle polling shared by fewer jobs)
STEADY_RATE = 10.0  # jobs/s: the rate issue 13 sets the steady target at
TARGET_DOLLARS_PER_MILLION = 3.0
TARGET_E2E_FRACTION = 0.70
TARGET_POST_RPS = 4 * 26.5
TARGET_POST_P99_MS = 927 / 4
TARGET_RSS_BYTES = 200 * 1024 * 1024
TARGET_LINEARITY = 0.80  # throughput at concurrency c at least 80% of c x the single-slot rate, until saturation
# Issue 13: our end-to-end jobs/s at least Celery's (same emulator, same run), and our processes' CPU per request
# within 1.5x of a bare boto3 PutItem + SendMessage loop's.
TARGET_CELERY_RATIO = 1.0
TARGET_CPU_FLOOR_RATIO = 1.5
CELERY_TASKS = 500
CELERY_BATCH_CLIENTS = 4  # keep-alive clients of the batch endpoint, MAX_BATCH_JOBS jobs per request
MOTO_ROLE = "local (moto + supervisor)"  # the emulator: not our CPU

Out = Callable[[str], None]


# --- helpers --------------------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parse_time(text: str) -> float:
    return parse_iso(text).timestamp()


def terminal_time(item: dict[str, Any]) -> tuple[str, float | None]:
    status = item.get(Attr.STATUS, {}).get("S", "?")
    transitions = item.get(Attr.TRANSITIONS, {}).get("M", {})
    if status in TERMINAL and status in transitions:
        return status, parse_time(transitions[status]["S"])
    if status in TERMINAL and Attr.UPDATED_AT in item:
        return status, parse_time(item[Attr.UPDATED_AT]["S"])
    return status, None


def read_items(dynamodb: Any, table: str, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Consistent BatchGetItem in chunks of 100 (the benchmark's own reads: not counted)."""
    items: dict[str, dict[str, Any]] = {}
    for start in range(0, len(job_ids), 100):
        request = {
            table: {
                "Keys": [key(job_id) for job_id in job_ids[start : start + 100]],
                "ConsistentRead": True,
            }
        }
        for _ in range(20):
            answer = dynamodb.batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(table, []):
                items[item[TABLE_KEY.name]["S"]] = item
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
    return items


def queue_depth(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def wait_terminal(
    dynamodb: Any, sqs: Any, resources: Resources, job_ids: list[str], timeout_s: float = DRAIN_TIMEOUT_S
) -> dict[str, dict[str, Any]]:
    """Waits until the queue is empty, then until every job is terminal (bounded); returns the items. Polls every
    POLL_S, as the Celery baseline's wait does (benchmarks/bench_celery.py): moto answers GetQueueAttributes by
    scanning every message, so a faster poll would slow the very run it watches, and ours more than Celery's."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and queue_depth(sqs, resources.queue_url) > 0:
        time.sleep(POLL_S)
    items: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        items = read_items(dynamodb, resources.table_name, job_ids)
        if len(items) == len(job_ids) and all(terminal_time(item)[1] is not None for item in items.values()):
            break
        time.sleep(POLL_S)
    return items


# The all-in-one's key belongs to tenant `local`: the documents a job names live under its prefix.
BENCH_TENANT = LOCAL_TENANT
BENCH_PREFIX = f"{tenant_prefix(BENCH_TENANT)}bench"


def doc_body(bucket: str, run: str, index: int) -> dict[str, Any]:
    return {
        "type": "process_document",
        "params": {
            "source": f"s3://{bucket}/{BENCH_PREFIX}/source.txt",
            "destination": f"s3://{bucket}/{BENCH_PREFIX}/{run}/{index}.json",
        },
    }


def batch_body(bucket: str, index: int) -> dict[str, Any]:
    return doc_body(bucket, "batch", index)


def io_body(wait_ms: int = 200) -> dict[str, Any]:
    return {"type": IO_WAIT_TYPE, "params": {"wait_ms": wait_ms}}


SOURCE_TEXT = ("The quick brown fox jumps over the lazy dog.\n" * 20).encode()  # ~900 bytes: a small document


@dataclass
class Env:
    """Clients of the benchmark itself (its calls are not counted: they are not in our processes)."""

    dynamodb: Any
    sqs: Any
    s3: Any
    ssm: Any
    resources: Resources

    @classmethod
    def of(cls, stack: LocalStack) -> Env:
        ssm = aws_client("ssm", stack.aws_url)
        resources = stack.resources(ssm)
        env = cls(
            aws_client("dynamodb", stack.aws_url),
            aws_client("sqs", stack.aws_url),
            aws_client("s3", stack.aws_url),
            ssm,
            resources,
        )
        env.s3.put_object(Bucket=resources.documents_bucket, Key=f"{BENCH_PREFIX}/source.txt", Body=SOURCE_TEXT)
        return env


def memory_prepare(stack: LocalStack) -> tuple[Any, str, str]:
    """The memory scenario's S3 client, documents bucket and the benchmark tenant's key prefix."""
    env = Env.of(stack)
    return env.s3, env.resources.documents_bucket, tenant_prefix(BENCH_TENANT)


def io_requests(count: int, wait_ms: int = 200, priority: str = "normal") -> list[Any]:
    from runtime.domain.job import Priority
    from runtime.domain.submit import SubmitRequest

    return [
        SubmitRequest(
            IO_WAIT_TYPE, Priority(priority), {"wait_ms": wait_ms}, {}, trace_id=uuid.uuid4().hex, tenant=BENCH_TENANT
        )
        for _ in range(count)
    ]


def job_service(env: Env) -> Any:
    """The submit use case on the benchmark's own clients, for the benchmark-only job type."""
    from runtime.adapters.dynamodb.store import DynamoDbJobStore
    from runtime.adapters.priority_queue import sqs_priority_queue
    from runtime.domain.job import Priority
    from runtime.domain.ports import UtcClock
    from runtime.domain.submit import JobService

    urls = {
        Priority.HIGH: env.resources.high_priority_queue_url,
        Priority.NORMAL: env.resources.queue_url,
        Priority.LOW: env.resources.low_priority_queue_url,
    }
    return JobService(
        DynamoDbJobStore(env.dynamodb, env.resources.table_name),
        sqs_priority_queue(env.sqs, urls),
        UtcClock(),
        retention_s=86_400,
        idempotency_ttl_s=86_400,
        submit_in_flight_s=5.0,
        retry_republish_after_s=10,
    )


def submit_io(stack: LocalStack, env: Env, count: int, wait_ms: int = 200) -> bench_load.LoadResult:
    """Through the API when it knows the benchmark's type (JOBS_API_PLUGINS), else through the domain directly."""
    probe = httpx.post(f"{stack.api_url}/api/v1/jobs", json=io_body(wait_ms), timeout=10, headers=stack.auth_headers)
    if probe.status_code == 201:
        load = bench_load.burst(
            stack.api_url, [io_body(wait_ms) for _ in range(count - 1)], concurrency=16, headers=stack.auth_headers
        )
        first = bench_load.Submitted(-1, time.time(), 0.0, 201, probe.json()["jobId"])
        load.submitted.insert(0, first)
        return load
    return bench_load.direct_submit(job_service(env), io_requests(count, wait_ms))


def stack_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {"JOBS_WORKER_PLUGINS": IO_PLUGIN, "JOBS_API_PLUGINS": IO_PLUGIN}
    env.update(extra or {})
    return env


def calls_total(stack: LocalStack) -> Calls:
    return merge(list(stack.calls_by_role().values()))


# --- results --------------------------------------------------------------------------------------------------------


@dataclass
class BurstRun:
    jobs: int
    completed: int
    statuses: dict[str, int]
    jobs_per_s: float
    latencies_s: list[float]
    submit_wall_s: float
    calls: Calls  # delta over the run, all categories
    calls_by_role: dict[str, Calls]
    log_bytes: int
    log_lines: int
    log_kinds: dict[str, int]
    loadgen_cpu_share: float
    cpu_by_role: dict[str, float]
    wall_s: float
    max_queue_depth: int
    other_cpu_cores: float = 0.0  # CPU of processes outside the benchmark's tree (other sessions): noise


@dataclass
class PriorityRun:
    """One high job submitted behind a backlog of low ones (issue 10, point 6)."""

    backlog: int
    waiting_at_high_submit: int  # backlog jobs not yet ended when the high job was submitted
    high_latency_s: float  # the high job: POST sent -> SUCCEEDED
    drain_s: float  # the backlog, from the same moment: high POST sent -> last low job ended
    low_ended_before_high: int  # backlog jobs that ended after the high job was submitted and before it ended
    receives: int  # ReceiveMessage calls during the run
    jobs: int  # jobs ended during the run

    @property
    def ratio(self) -> float:
        return self.high_latency_s / self.drain_s if self.drain_s > 0 else float("inf")


@dataclass
class Results:
    ceilings: list[list[Ceiling]] = field(default_factory=list)
    replays: list[Replay] = field(default_factory=list)  # the emulator's ceiling for our exact per-job calls
    submit_replays: list[float] = field(default_factory=list)  # POST/s the emulator serves for the submit calls
    bursts: list[BurstRun] = field(default_factory=list)
    steadies: list[BurstRun] = field(default_factory=list)
    steady_rate: float = 0.0
    posts: list[dict[str, Any]] = field(default_factory=list)
    posts_paused: list[dict[str, Any]] = field(default_factory=list)  # the same POST load with the worker stopped
    concurrency: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    states: JobItemStates | None = None
    table_keys: tuple[str, ...] = ()
    gsis: tuple[Any, ...] = ()
    poll_calls_per_get: float | None = None
    auth_calls_per_request: tuple[float, float] | None = None  # (key cached, key not yet cached)
    priorities: list[PriorityRun] = field(default_factory=list)
    celery: list[CeleryRun] = field(default_factory=list)
    ours_noop: list[BurstRun] = field(default_factory=list)  # our side of the Celery comparison
    cpu_floor_ms: list[float] = field(default_factory=list)  # bare boto3 PutItem + SendMessage, CPU ms per pair


# --- scenarios ------------------------------------------------------------------------------------------------------


def scenario_ceiling(results: Results, out: Out, repeats: int, backlog: int) -> None:
    with LocalStack(env=stack_env()) as stack:
        for repeat in range(repeats):
            measured = measure_ceiling(stack.aws_url, backlog)
            results.ceilings.append(measured)
            rates = ", ".join(
                f"{c.operation} x{c.threads} {c.per_s:.0f}/s (client cpu {c.client_cpu_s / c.wall_s:.2f} cores)"
                for c in measured
            )
            out(f"  ceiling run {repeat + 1}: {rates}")
            for depth in sorted({0, backlog}):
                replay = measure_replay(stack.aws_url, depth)
                results.replays.append(replay)
                out(f"  replay run {repeat + 1} (backlog {depth}): {replay.jobs_per_s:.1f} jobs/s")
            results.submit_replays.append(measure_submit_replay(stack.aws_url))
            out(f"  submit replay run {repeat + 1}: {results.submit_replays[-1]:.1f} POST/s")


def capture_item_states(stack: LocalStack, env: Env, results: Results, out: Out) -> None:
    """The item as submit writes it (worker paused), as a claim leaves it (a slow job seen mid-run), and at the
    end: the sizes the dollar figures need."""
    run = uuid.uuid4().hex[:6]
    worker = stack.pid_of("worker")
    with httpx.Client(base_url=stack.api_url, timeout=10, headers=stack.auth_headers) as client:
        if worker is not None:
            os.kill(worker, signal.SIGSTOP)  # see the PENDING item before any claim
        try:
            doc = client.post("/api/v1/jobs", json=doc_body(env.resources.documents_bucket, run, 0))
            slow = submit_io(stack, env, 1, wait_ms=3000).ok
            doc_id = doc.json()["jobId"]
            pending_doc = read_items(env.dynamodb, env.resources.table_name, [doc_id])[doc_id]
            slow_id = slow[0].job_id if slow else None
            pending_slow = read_items(env.dynamodb, env.resources.table_name, [slow_id])[slow_id] if slow_id else None
        finally:
            if worker is not None:
                os.kill(worker, signal.SIGCONT)
        processing: dict[str, Any] | None = None
        if slow_id and pending_slow:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                item = read_items(env.dynamodb, env.resources.table_name, [slow_id])[slow_id]
                if item[Attr.STATUS]["S"] == "PROCESSING":
                    processing = derive_processing(pending_doc, pending_slow, item)
                    break
                time.sleep(0.05)
        items = wait_terminal(env.dynamodb, env.sqs, env.resources, [doc_id, *([slow_id] if slow_id else [])], 60)
    final_doc = items[doc_id]
    if processing is None:
        out("  (no PROCESSING item seen: derived from the PENDING and final items)")
        processing = reconstruct_processing(pending_doc, final_doc)
    results.states = JobItemStates(pending=pending_doc, processing=processing, final=final_doc)
    table = env.dynamodb.describe_table(TableName=env.resources.table_name)["Table"]
    results.table_keys, results.gsis = gsis_from_description(table)
    # One GET of a finished job: what polling costs per request (category "poll").
    before = calls_total(stack)
    with httpx.Client(base_url=stack.api_url, timeout=10, headers=stack.auth_headers) as client:
        for _ in range(20):
            client.get(f"/api/v1/jobs/{doc_id}")
    time.sleep(DUMP_SETTLE_S)
    polled = subtract(calls_total(stack), before).get("poll", {})
    results.poll_calls_per_get = sum(polled.values()) / 20
    # Authentication (category "auth"): those 20 GETs reused a key the API had seen (cached); now the first
    # request of each of 5 new keys (uncached: the lookup the cache saves).
    cached = subtract(calls_total(stack), before).get("auth", {})
    admin = AccessAdmin(DynamoDbAccessStore(env.dynamodb, env.resources.access_table_name), UtcClock())
    new_keys = [admin.create_key("bench").token for _ in range(5)]
    before = calls_total(stack)
    for token in new_keys:
        httpx.get(f"{stack.api_url}/api/v1/jobs/{doc_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    time.sleep(DUMP_SETTLE_S)
    uncached = subtract(calls_total(stack), before).get("auth", {})
    results.auth_calls_per_request = (sum(cached.values()) / 20, sum(uncached.values()) / len(new_keys))


# Attributes a claim never changes.
_STABLE = frozenset(
    {
        Attr.JOB_ID,
        Attr.JOB_TYPE,
        Attr.PARAMS,
        Attr.FINGERPRINT,
        Attr.TRACE_ID,
        Attr.METADATA,
        Attr.IDEMPOTENCY_KEY,
        Attr.CREATED_AT,
        Attr.EXPIRES_AT,
        Attr.PRIORITY,
    }
)


def derive_processing(
    pending_doc: dict[str, Any], pending_slow: dict[str, Any], processing_slow: dict[str, Any]
) -> dict[str, Any]:
    """The doc job's item after its claim: its PENDING item with the attributes a claim changed on the slow job."""
    result = {name: value for name, value in pending_doc.items() if name in processing_slow or name in _STABLE}
    for name, value in processing_slow.items():
        if name not in _STABLE and pending_slow.get(name) != value:
            result[name] = value
    return result


def reconstruct_processing(pending: dict[str, Any], final: dict[str, Any]) -> dict[str, Any]:
    result = {name: value for name, value in pending.items() if name not in (Attr.PENDING_SHARD, Attr.PENDING_SINCE)}
    for name in (Attr.ATTEMPTS, Attr.LEASE_EXPIRES_AT, Attr.UPDATED_AT):
        if name in final:
            result[name] = final[name]
    result[Attr.STATUS] = {"S": "PROCESSING"}
    transitions = {k: v for k, v in final.get(Attr.TRANSITIONS, {}).get("M", {}).items() if k not in TERMINAL}
    if transitions:
        result[Attr.TRANSITIONS] = {"M": transitions}
    return result


def run_jobs(
    stack: LocalStack,
    env: Env,
    submit: Callable[[], bench_load.LoadResult],
    *,
    out: Out,
    start_wall: Callable[[bench_load.LoadResult], float] | None = None,
) -> BurstRun:
    """Submits (via `submit`), waits for every job to be terminal, and measures what happened in between."""
    time.sleep(DUMP_SETTLE_S)
    calls_before = stack.calls_by_role()
    bytes_before, lines_before, kinds_before, _ = stack.output.snapshot()
    cpu_before = stack.cpu_by_role()
    busy_before, own_before = machine_busy_s(), _own_cpu_s()
    started = time.monotonic()
    load = submit()
    job_ids = [item.job_id for item in load.ok if item.job_id]
    depth_after_submit = queue_depth(env.sqs, env.resources.queue_url)
    items = wait_terminal(env.dynamodb, env.sqs, env.resources, job_ids)
    time.sleep(DUMP_SETTLE_S)
    wall = time.monotonic() - started
    calls_after = stack.calls_by_role()
    bytes_after, lines_after, kinds_after, _ = stack.output.snapshot()
    cpu_after = stack.cpu_by_role()
    busy = machine_busy_s() - busy_before
    ours = sum(cpu_after.values()) - sum(cpu_before.values()) + _own_cpu_s() - own_before

    statuses: dict[str, int] = {}
    latencies: list[float] = []
    ends: list[float] = []
    sent = {item.job_id: item.sent_wall_s for item in load.ok}
    for job_id, item in items.items():
        status, ended = terminal_time(item)
        statuses[status] = statuses.get(status, 0) + 1
        if ended is not None:
            latencies.append(max(0.0, ended - sent[job_id]))
            ends.append(ended)
    first = start_wall(load) if start_wall else min(sent.values())
    jobs_per_s = len(ends) / (max(ends) - first) if ends and max(ends) > first else 0.0
    roles = set(calls_after) | set(calls_before)
    by_role = {role: subtract(calls_after.get(role, {}), calls_before.get(role, {})) for role in roles}
    failures = [item for item in load.submitted if item.status not in (200, 201)]
    if failures:
        out(f"  {len(failures)} submits failed, first: {failures[0].status} {failures[0].error}")
    return BurstRun(
        jobs=len(job_ids),
        completed=len(ends),
        statuses=statuses,
        jobs_per_s=jobs_per_s,
        latencies_s=latencies,
        submit_wall_s=load.wall_s,
        calls=merge(list(by_role.values())),
        calls_by_role=by_role,
        log_bytes=bytes_after - bytes_before,
        log_lines=lines_after - lines_before,
        log_kinds=dict(kinds_after - kinds_before),
        loadgen_cpu_share=load.cpu_share,
        cpu_by_role={role: cpu_after.get(role, 0.0) - cpu_before.get(role, 0.0) for role in cpu_after},
        wall_s=wall,
        max_queue_depth=depth_after_submit,
        other_cpu_cores=max(0.0, busy - ours) / wall,
    )


def scenario_burst(results: Results, out: Out, repeats: int, jobs: int) -> None:
    for repeat in range(repeats):
        with LocalStack(env=stack_env()) as stack:
            env = Env.of(stack)
            if results.states is None:
                capture_item_states(stack, env, results, out)
            run = uuid.uuid4().hex[:6]
            bodies = [doc_body(env.resources.documents_bucket, run, index) for index in range(jobs)]
            measured = run_jobs(
                stack,
                env,
                lambda bodies=bodies: bench_load.burst(
                    stack.api_url, bodies, concurrency=16, headers=stack.auth_headers
                ),
                out=out,
            )
            results.bursts.append(measured)
            out(f"  (fresh all-in-one ready in {stack.started_s:.1f} s)")
            lat = summarize_latencies(measured.latencies_s) if measured.latencies_s else None
            out(
                f"  burst run {repeat + 1}: {measured.completed}/{measured.jobs} terminal {measured.statuses}, "
                f"{measured.jobs_per_s:.1f} jobs/s, submit {measured.jobs / measured.submit_wall_s:.0f}/s, "
                f"queue depth after submit {measured.max_queue_depth}" + (f", {lat.row()}" if lat else "")
            )


PRIORITY_BACKLOG = 300
# Long enough that the backlog is still deep when the high job comes (300 submits take a few seconds) and
# short enough to drain in well under a minute on the all-in-one's 8 worker slots.
PRIORITY_WAIT_MS = 500


def scenario_priority(results: Results, out: Out, repeats: int, backlog: int) -> None:
    for repeat in range(repeats):
        with LocalStack(env=stack_env()) as stack:
            env = Env.of(stack)
            time.sleep(DUMP_SETTLE_S)
            calls_before = calls_total(stack)
            # Through the domain's submit (the API does not know the benchmark's job type): the same items and
            # messages, each in its priority's queue.
            service = job_service(env)
            load = bench_load.direct_submit(service, io_requests(backlog, PRIORITY_WAIT_MS, "low"))
            high = bench_load.direct_submit(service, io_requests(1, PRIORITY_WAIT_MS, "high"), concurrency=1)
            if len(load.ok) != backlog or len(high.ok) != 1:
                failed = next(item for item in load.submitted + high.submitted if item.status not in (200, 201))
                out(
                    f"  priority run {repeat + 1}: submits failed ({len(load.ok)}/{backlog} low, "
                    f"{len(high.ok)}/1 high), first: {failed.status} {failed.error}"
                )
                continue
            high_sent, high_id = high.ok[0].sent_wall_s, str(high.ok[0].job_id)
            job_ids = [str(item.job_id) for item in load.ok] + [high_id]
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            ends: dict[str, float] = {}
            while time.monotonic() < deadline and len(ends) < len(job_ids):
                for job_id, item in read_items(env.dynamodb, env.resources.table_name, job_ids).items():
                    ended = terminal_time(item)[1]
                    if ended is not None:
                        ends[job_id] = ended
                time.sleep(0.5)
            time.sleep(DUMP_SETTLE_S)
            calls = subtract(calls_total(stack), calls_before)
            if len(ends) < len(job_ids):
                out(
                    f"  priority run {repeat + 1}: only {len(ends)}/{len(job_ids)} jobs ended "
                    f"in {DRAIN_TIMEOUT_S:.0f} s"
                )
                continue
            high_end = ends.pop(high_id)
            low_ends = list(ends.values())
            measured = PriorityRun(
                backlog=backlog,
                waiting_at_high_submit=sum(1 for ended in low_ends if ended > high_sent),
                high_latency_s=high_end - high_sent,
                drain_s=max(low_ends) - high_sent,
                low_ended_before_high=sum(1 for ended in low_ends if high_sent < ended <= high_end),
                receives=sum(ops.get("sqs.ReceiveMessage", 0) for ops in calls.values()),
                jobs=len(job_ids),
            )
            results.priorities.append(measured)
            out(
                f"  priority run {repeat + 1}: high job {measured.high_latency_s:.2f} s behind "
                f"{measured.waiting_at_high_submit} waiting low jobs that drained in {measured.drain_s:.1f} s "
                f"(ratio {measured.ratio:.3f}; {measured.low_ended_before_high} low ended before it); "
                f"ReceiveMessage {measured.receives / measured.jobs:.3f}/job"
            )


def scenario_steady(results: Results, out: Out, repeats: int, duration_s: float, rate: float) -> None:
    results.steady_rate = rate
    for repeat in range(repeats):
        with LocalStack(env=stack_env()) as stack:
            env = Env.of(stack)
            run = uuid.uuid4().hex[:6]
            bucket = env.resources.documents_bucket
            measured = run_jobs(
                stack,
                env,
                lambda stack=stack, bucket=bucket, run=run: bench_load.steady(
                    stack.api_url,
                    lambda index: doc_body(bucket, run, index),
                    rate_per_s=rate,
                    duration_s=duration_s,
                    headers=stack.auth_headers,
                ),
                out=out,
            )
            results.steadies.append(measured)
            lat = summarize_latencies(measured.latencies_s) if measured.latencies_s else None
            out(
                f"  steady run {repeat + 1} at {rate:.1f}/s: {measured.completed}/{measured.jobs} terminal, "
                f"{measured.jobs_per_s:.1f} jobs/s" + (f", {lat.row()}" if lat else "")
            )


def measure_post(stack: LocalStack, env: Env, duration_s: float, clients: int) -> dict[str, Any]:
    """One closed-loop POST run against a started all-in-one: rate, latency, peak RSS, CPU by role, queue depth."""
    run = uuid.uuid4().hex[:6]
    bucket = env.resources.documents_bucket
    peak_rss: dict[str, int] = {}

    def sample() -> None:
        for role, value in stack.rss_by_role().items():
            peak_rss[role] = max(peak_rss.get(role, 0), value)

    cpu_before = stack.cpu_by_role()
    busy_before, own_before = machine_busy_s(), _own_cpu_s()
    load = bench_load.closed_loop(
        stack.api_url,
        lambda index: doc_body(bucket, run, index),
        clients=clients,
        duration_s=duration_s,
        max_requests=int(duration_s * 2000),
        on_tick=sample,
        headers=stack.auth_headers,
    )
    cpu_after = stack.cpu_by_role()
    ours = sum(cpu_after.values()) - sum(cpu_before.values()) + _own_cpu_s() - own_before
    other = max(0.0, machine_busy_s() - busy_before - ours) / load.wall_s
    sample()
    depth = queue_depth(env.sqs, env.resources.queue_url)
    ok = [item for item in load.submitted if item.status == 201]
    lat = summarize_latencies([item.latency_s for item in load.submitted])
    # The queue fills during the run (the worker drains slower than the API submits) and moto's SQS slows
    # with depth: the first seconds show the API while the queue is still shallow.
    t0 = min(item.sent_wall_s for item in load.submitted)
    early = [item for item in load.submitted if item.sent_wall_s + item.latency_s <= t0 + EARLY_WINDOW_S]
    early_lat = summarize_latencies([item.latency_s for item in early]) if early else lat
    return {
        "requests": len(load.submitted),
        "ok": len(ok),
        "rps": len(ok) / load.wall_s,
        "p50_ms": lat.p50_ms,
        "p99_ms": lat.p99_ms,
        "rss": peak_rss,
        "cpu": {role: (cpu_after.get(role, 0.0) - cpu_before.get(role, 0.0)) / load.wall_s for role in cpu_after},
        "loadgen_cpu": load.cpu_share,
        "queue_depth_end": depth,
        "early_rps": len(early) / EARLY_WINDOW_S,
        "early_p99_ms": early_lat.p99_ms,
        "early_p50_ms": early_lat.p50_ms,
        "errors": len(load.submitted) - len(ok),
        "other_cpu": other,
        "clients": clients,
    }


def _rss_text(rss: dict[str, int]) -> str:
    return ", ".join(f"{role} {value / 2**20:.0f} MB" for role, value in sorted(rss.items()))


def api_calls(stack: LocalStack) -> Calls:
    """The API process's AWS calls so far (every category: its batched sends run off the request's context)."""
    return stack.calls_by_role().get("api", {})


def scenario_post(results: Results, out: Out, repeats: int, duration_s: float, clients: int) -> None:
    for repeat in range(repeats):
        # System: the worker drains concurrently, so the one moto process serves the whole pipeline.
        with LocalStack(env=stack_env()) as stack:
            measured = measure_post(stack, Env.of(stack), duration_s, clients)
            results.posts.append(measured)
            out(
                f"  POST run {repeat + 1}: {measured['rps']:.1f} req/s, p50 {measured['p50_ms']:.1f} ms, "
                f"p99 {measured['p99_ms']:.1f} ms, "
                f"errors {measured['errors']}, queue depth at end {measured['queue_depth_end']}, "
                f"RSS {_rss_text(measured['rss'])}"
            )
        # API capacity: the same load on a fresh all-in-one with the worker stopped for the whole run, so moto
        # serves only the submit path. The worker is resumed before the stack stops (a stopped process cannot
        # handle SIGTERM); its backlog is not drained, nothing is measured after the load.
        with LocalStack(env=stack_env()) as stack:
            env = Env.of(stack)
            with paused(stack.pid_of("worker")):
                results.cpu_floor_ms.append(measure_cpu_floor(stack.aws_url))
                time.sleep(DUMP_SETTLE_S)  # the call files are rewritten every second: start from a settled count
                before = api_calls(stack)
                api_cpu_before = stack.cpu_by_role().get("api", 0.0)
                measured = measure_post(stack, env, duration_s, clients)
                measured["api_cpu_ms_per_post"] = (
                    1000 * (stack.cpu_by_role().get("api", 0.0) - api_cpu_before) / max(measured["ok"], 1)
                )
                time.sleep(DUMP_SETTLE_S)
                made = subtract(api_calls(stack), before)
            per_post = {
                op: count / max(measured["ok"], 1)
                for cat, ops in made.items()
                if cat not in ("poll", "health")
                for op, count in ops.items()
            }
            measured["calls_per_post"] = per_post
            results.posts_paused.append(measured)
            out(
                f"  POST run {repeat + 1} (API capacity, worker paused): {measured['rps']:.1f} req/s, "
                f"p50 {measured['p50_ms']:.1f} ms, p99 {measured['p99_ms']:.1f} ms, errors {measured['errors']}, "
                f"queue depth at end {measured['queue_depth_end']}, "
                + ", ".join(f"{op} {count:.3f}" for op, count in sorted(per_post.items()))
                + f" per POST, RSS {_rss_text(measured['rss'])} (worker paused)"
            )


# Our nearest to Celery's no-op task that the API accepts (it loads no benchmark plugin): a one-record transform
# in memory, no S3, a result of one record.
NOOP_TYPE = "transform_data"


def noop_body() -> dict[str, Any]:
    return {"type": NOOP_TYPE, "params": {"records": [{"n": 1}], "operations": [{"op": "limit", "count": 1}]}}


def scenario_celery(results: Results, out: Out, repeats: int, tasks: int) -> None:
    """Celery's no-op tasks and ours, each on a fresh all-in-one (ours idle while Celery runs on its moto)."""
    for repeat in range(repeats):
        with LocalStack(env=stack_env()) as stack:
            celery_run = measure_celery(stack, tasks)
        results.celery.append(celery_run)
        out(
            f"  celery run {repeat + 1}: {celery_run.completed}/{celery_run.tasks} done, "
            f"{celery_run.tasks_per_s:.1f} tasks/s, {celery_run.requests_per_task:.2f} AWS requests per task, "
            f"{celery_run.cpu_ms_per_task:.1f} CPU ms per task (worker + producer)"
        )
        with LocalStack(env=stack_env()) as stack:
            env = Env.of(stack)
            results.cpu_floor_ms.append(measure_cpu_floor(stack.aws_url))
            bodies = [noop_body() for _ in range(tasks)]
            measured = run_jobs(
                stack,
                env,
                lambda stack=stack, bodies=bodies: bench_load.batch_burst(
                    stack.api_url,
                    bodies,
                    clients=CELERY_BATCH_CLIENTS,
                    per_request=MAX_BATCH_JOBS,
                    headers=stack.auth_headers,
                ),
                out=out,
            )
        results.ours_noop.append(measured)
        out(
            f"  ours run {repeat + 1}: {measured.completed}/{measured.jobs} terminal {measured.statuses}, "
            f"{measured.jobs_per_s:.1f} jobs/s, "
            f"{system_requests(per_job(measured.calls, max(measured.completed, 1))):.2f} AWS requests per job, "
            f"{our_cpu_ms_per_job(measured):.1f} CPU ms per job (api + worker + dlq poller)"
        )


def our_cpu_ms_per_job(run: BurstRun) -> float:
    """CPU of our processes (not the emulator's) per completed job."""
    ours = sum(cpu for role, cpu in run.cpu_by_role.items() if role != MOTO_ROLE)
    return 1000 * ours / max(run.completed, 1)


def scenario_concurrency(results: Results, out: Out, repeats: int, levels: list[int], backlog_cap: int) -> None:
    for level in levels:
        jobs = min(backlog_cap, max(25, level * 25))
        for repeat in range(repeats):
            with LocalStack(env=stack_env({"JOBS_WORKER_CONCURRENCY": str(level)})) as stack:
                env = Env.of(stack)
                worker = stack.pid_of("worker")
                if worker is None:
                    raise RuntimeError("no worker process found under runtime.local")
                resumed: list[float] = []

                def submit(
                    stack: LocalStack = stack,
                    env: Env = env,
                    worker: int = worker,
                    jobs: int = jobs,
                    resumed: list[float] = resumed,
                ) -> bench_load.LoadResult:
                    # A backlog first (worker paused), then the drain is timed from the moment it resumes.
                    os.kill(worker, signal.SIGSTOP)
                    try:
                        load = submit_io(stack, env, jobs)
                    finally:
                        resumed.append(time.time())
                        os.kill(worker, signal.SIGCONT)
                    return load

                measured = run_jobs(stack, env, submit, out=out, start_wall=lambda _load, resumed=resumed: resumed[0])
                entry = {
                    "jobs": jobs,
                    "jobs_per_s": measured.jobs_per_s,
                    "completed": measured.completed,
                    "statuses": measured.statuses,
                    "calls": measured.calls,
                    "cpu": measured.cpu_by_role,
                    "wall_s": measured.wall_s,
                    "other_cpu": measured.other_cpu_cores,
                }
                results.concurrency.setdefault(level, []).append(entry)
                out(
                    f"  concurrency {level} run {repeat + 1}: backlog {jobs}, {measured.jobs_per_s:.1f} jobs/s "
                    f"(ideal {level / 0.2:.0f}/s), {measured.statuses}"
                )


# --- report ---------------------------------------------------------------------------------------------------------


def per_job(calls: Calls, jobs: int) -> dict[str, dict[str, float]]:
    return {cat: {op: count / jobs for op, count in ops.items()} for cat, ops in calls.items()}


def median_calls(runs: list[BurstRun]) -> dict[str, dict[str, float]]:
    """Per-job calls by category and operation: the median over the runs of each cell."""
    keys = {(cat, op) for run in runs for cat, ops in run.calls.items() for op in ops}
    result: dict[str, dict[str, float]] = {}
    for cat, op in sorted(keys):
        values = [run.calls.get(cat, {}).get(op, 0) / max(run.completed, 1) for run in runs]
        result.setdefault(cat, {})[op] = statistics.median(values)
    return result


SYSTEM_CATEGORIES = ("submit", "worker", "background", "dlq", "other")


def system_requests(calls: dict[str, dict[str, float]]) -> float:
    """Requests per job of the system itself: no status polling, no health checks, no S3 of the job's own work."""
    return sum(
        count
        for cat, ops in calls.items()
        if cat in SYSTEM_CATEGORIES
        for op, count in ops.items()
        if not op.lower().startswith("s3.")
    )


def emulator_requests(calls: dict[str, dict[str, float]]) -> float:
    """Every request the emulator must serve per job (the job's S3 work included, polling excluded)."""
    return sum(count for cat, ops in calls.items() if cat not in ("poll", "health") for count in ops.values())


def mixed_ceiling(ceiling: dict[str, float], calls: dict[str, dict[str, float]]) -> float:
    """Requests/s the emulator serves in our mix: DynamoDB ops at the PutItem rate, SQS ops at the SendMessage
    rate, S3 at the PutItem rate (a harmonic mean weighted by our per-job counts)."""
    weights = {"PutItem": 0.0, "SendMessage": 0.0}
    for cat, ops in calls.items():
        if cat in ("poll", "health"):
            continue
        for op, count in ops.items():
            weights["SendMessage" if op.lower().startswith("sqs.") else "PutItem"] += count
    total = sum(weights.values())
    if not total:
        return 0.0
    return total / sum(weight / ceiling[name] for name, weight in weights.items())


def report(results: Results, out: Out, prices: PriceTable) -> None:
    out("")
    out("=" * 100)
    ceiling: dict[str, float] = {}
    if results.ceilings:
        out(
            "EMULATOR CEILING (moto server, simple calls from one process, fresh state; median of "
            "runs, best thread count; SendMessage@N: behind a backlog of N messages)"
        )
        operations = sorted({c.operation for run in results.ceilings for c in run}, key=lambda name: (len(name), name))
        for operation in operations:
            best = 0.0
            for threads in sorted({c.threads for run in results.ceilings for c in run}):
                values = [
                    c.per_s
                    for run in results.ceilings
                    for c in run
                    if c.operation == operation and c.threads == threads
                ]
                if values:
                    out(
                        f"  {operation:12s} threads {threads:2d}: {median_of(values):7.0f} req/s   "
                        f"runs {[round(v) for v in values]}"
                    )
                    best = max(best, median_of(values))
            ceiling[operation] = best

    calls = median_calls(results.bursts) if results.bursts else {}
    if calls:
        runs = results.bursts
        out("")
        out(
            f"AWS REQUESTS PER COMPLETED JOB (counted by botocore hooks in our processes; burst of {runs[0].jobs} "
            f"process_document jobs, median of {len(runs)} fresh runs)"
        )
        for cat in (
            "submit",
            "worker",
            "dlq",
            "background",
            *sorted(set(calls) - {"submit", "worker", "dlq", "background"}),
        ):
            subtotal = sum(calls.get(cat, {}).values())
            label = {"poll": " (status polling: excluded)", "health": " (readiness: excluded)"}.get(cat, "")
            out(f"  {cat}{label}: {subtotal:.3f}")
            for op, count in sorted(calls.get(cat, {}).items()):
                note = "  (the job's own work: excluded from the system figure)" if op.lower().startswith("s3.") else ""
                out(f"      {op:40s} {count:8.3f}{note}")
        system = system_requests(calls)
        out(
            f"  SYSTEM TOTAL (submit + worker + background + dlq + other, no S3 job work): {system:.3f}   "
            f"target <= {TARGET_REQUESTS_PER_JOB}  {verdict(system <= TARGET_REQUESTS_PER_JOB)}"
        )
        if results.poll_calls_per_get is not None:
            out(
                f"  status polling, shown apart: {results.poll_calls_per_get:.2f} AWS requests per "
                f"GET /api/v1/jobs/{{id}}"
            )
        if results.auth_calls_per_request is not None:
            cached_calls, uncached_calls = results.auth_calls_per_request
            out(
                f"  authentication, per authenticated request: {cached_calls:.2f} AWS requests with a cached "
                f"API key, {uncached_calls:.2f} for a key's first request (one GetItem; cached "
                f"{AUTH_CACHE_TTL_S:g} s)"
            )
        steady_calls = median_calls(results.steadies) if results.steadies else None
        if steady_calls:
            steady_system = system_requests(steady_calls)
            out(
                f"  at the steady rate ({results.steady_rate:.1f} jobs/s): "
                f"{steady_system:.3f} system requests per job   target <= {TARGET_REQUESTS_PER_JOB_STEADY}  "
                f"{verdict(steady_system <= TARGET_REQUESTS_PER_JOB_STEADY)}; by category "
                + ", ".join(f"{cat} {sum(ops.values()):.3f}" for cat, ops in sorted(steady_calls.items()))
            )
        roles = {role for run in runs for role in run.calls_by_role}
        first_run = runs[0]

        def role_total(role: str) -> float:
            ops = first_run.calls_by_role.get(role, {})
            return sum(sum(counts.values()) for counts in ops.values()) / max(first_run.completed, 1)

        out("  by process (first run): " + "; ".join(f"{role} {role_total(role):.3f}" for role in sorted(roles)))

        if results.states is not None:
            states = results.states
            log_bytes = median_of([run.log_bytes / max(run.completed, 1) for run in runs])
            lines = price_per_job(
                calls,
                states=states,
                table_keys=results.table_keys,
                gsis=results.gsis,
                log_bytes_per_job=log_bytes,
                prices=prices,
            )
            report_costs(lines, results, runs, out, prices)

    if results.bursts:
        report_throughput(results, ceiling, calls, out)
    if results.posts:
        report_post(results, ceiling, calls, out)
    if results.concurrency:
        report_concurrency(results, ceiling, calls, out)
    if results.priorities:
        report_priority(results.priorities, out)
    if results.celery:
        report_celery(results, out)
    report_cpu(results, out)


def report_celery(results: Results, out: Out) -> None:
    out("")
    out(
        f"CELERY BASELINE (celery {celery_version()} from PyPI: SQS broker + DynamoDB result backend on a fresh "
        f"all-in-one's moto, -P threads -c 16, no-op task, producer calling .delay(); ours: the same number of "
        f"one-record {NOOP_TYPE} jobs through POST /api/v1/jobs/batch, {MAX_BATCH_JOBS} per request, "
        f"{CELERY_BATCH_CLIENTS} keep-alive clients; each on a fresh all-in-one; e2e = jobs / (last completion - "
        f"first send); median of {len(results.celery)} runs)"
    )
    celery_rate = median_of([run.tasks_per_s for run in results.celery])
    ours_rate = median_of([run.jobs_per_s for run in results.ours_noop]) if results.ours_noop else 0.0
    out(
        f"  celery : {celery_rate:6.1f} tasks/s (runs {[round(run.tasks_per_s, 1) for run in results.celery]}), "
        f"{median_of([run.requests_per_task for run in results.celery]):.2f} AWS requests per task, "
        f"{median_of([run.cpu_ms_per_task for run in results.celery]):.1f} CPU ms per task"
    )
    first = results.celery[0]
    out(
        "      per task (first run): "
        + ", ".join(
            f"{op} {count / max(first.completed, 1):.3f}"
            for ops in first.calls.values()
            for op, count in sorted(ops.items())
        )
    )
    if results.ours_noop:
        ours_requests = median_of(
            [system_requests(per_job(run.calls, max(run.completed, 1))) for run in results.ours_noop]
        )
        out(
            f"  ours   : {ours_rate:6.1f} jobs/s (runs {[round(run.jobs_per_s, 1) for run in results.ours_noop]}), "
            f"{ours_requests:.2f}"
            f" AWS requests per job, {median_of([our_cpu_ms_per_job(run) for run in results.ours_noop]):.1f} CPU ms "
            f"per job; statuses {results.ours_noop[0].statuses}"
        )
        ratio = ours_rate / celery_rate if celery_rate else 0.0
        out(
            f"  ours / celery e2e = {ratio:.2f}x   target >= {TARGET_CELERY_RATIO:.1f}x  "
            f"{verdict(ratio >= TARGET_CELERY_RATIO)}"
        )


def celery_version() -> str:
    import celery

    return str(celery.__version__)


def report_cpu(results: Results, out: Out) -> None:
    """Our processes' CPU per POST (API, worker paused) and per completed job, against the bare boto3 floor."""
    if not results.cpu_floor_ms:
        return
    floor = median_of(results.cpu_floor_ms)
    out("")
    out(
        f"CPU PER REQUEST (/proc; floor: a bare loop of one boto3 PutItem + one SendMessage on one thread, "
        f"measured in this run: {floor:.2f} CPU ms per pair, runs {[round(v, 2) for v in results.cpu_floor_ms]})"
    )
    rows: list[tuple[str, float]] = []
    if results.posts_paused:
        rows.append(
            (
                "per POST /api/v1/jobs (api process, worker paused)",
                median_of([p.get("api_cpu_ms_per_post", 0.0) for p in results.posts_paused]),
            )
        )
    if results.bursts:
        rows.append(
            (
                "per completed job, burst (api + worker + dlq poller)",
                median_of([our_cpu_ms_per_job(run) for run in results.bursts]),
            )
        )
    if results.ours_noop:
        rows.append(
            (
                "per completed no-op job, batch submit (api + worker + dlq)",
                median_of([our_cpu_ms_per_job(run) for run in results.ours_noop]),
            )
        )
    if results.celery:
        out(
            f"  celery (worker + producer) per no-op task: {median_of([r.cpu_ms_per_task for r in results.celery]):.2f}"
            f" CPU ms = {median_of([r.cpu_ms_per_task for r in results.celery]) / floor:.2f}x the floor (shown apart)"
        )
    for name, value in rows:
        ratio = value / floor if floor else 0.0
        out(
            f"  {name:58s} {value:7.2f} CPU ms = {ratio:5.2f}x the floor   target <= {TARGET_CPU_FLOOR_RATIO}x  "
            f"{verdict(ratio <= TARGET_CPU_FLOOR_RATIO)}"
        )


def report_priority(runs: list[PriorityRun], out: Out) -> None:
    out("")
    out(
        "PRIORITIES (one queue per priority, weighted polling high 6 / normal 3 / low 1; a high job submitted "
        "right after a burst of low ones; median of runs)"
    )
    ratio = median_of([run.ratio for run in runs])
    out(
        f"  high job latency {median_of([run.high_latency_s for run in runs]):.2f} s vs the backlog's drain "
        f"{median_of([run.drain_s for run in runs]):.1f} s from the same moment "
        f"({median_of([float(run.waiting_at_high_submit) for run in runs]):.0f} low jobs still waiting): "
        f"ratio {ratio:.3f}   runs {[round(run.ratio, 3) for run in runs]}"
    )
    out(
        f"  low jobs that ended while the high one waited: "
        f"{median_of([float(run.low_ended_before_high) for run in runs]):.0f}; "
        f"ReceiveMessage per job {median_of([run.receives / run.jobs for run in runs]):.3f}"
    )
    out(f"  {verdict(ratio < 0.25)} the high job ends within a quarter of the backlog's drain time")


def report_costs(lines: list[CostLine], results: Results, runs: list[BurstRun], out: Out, prices: PriceTable) -> None:
    states = results.states
    assert states is not None
    out("")
    out(
        f"ITEM SIZES (documented rules: names + values) and write units; table keys {results.table_keys}, GSIs "
        + ", ".join(
            f"{g.name} [{g.projection}{' ' + ','.join(g.included) if g.included else ''}]" for g in results.gsis
        )
    )
    for name, before, after in (
        ("submit put", None, states.pending),
        ("completion", states.pending, states.final),  # a quick job's one worker write (lazy claim)
        ("claim", states.pending, states.processing),  # a long job's, past the lazy-claim threshold
        ("completion after claim", states.processing, states.final),
    ):
        cost = write_cost(before, after, table_keys=results.table_keys, gsis=results.gsis)
        size = item_size(after)
        out(
            f"  {name:22s}: item {size:4d} B after (before {item_size(before) if before else 0:4d} B) -> "
            f"table {cost.table_units} WRU + GSI {cost.index_units or {}} = {cost.total} WRU"
        )
    out(
        f"  {'read before running':22s}: item {item_size(states.pending):4d} B (PENDING, consistent BatchGetItem, "
        f"billed per item) -> {read_units(item_size(states.pending), consistent=True):g} RRU"
    )
    described = {g.name for g in results.gsis}
    declared = {index.name for index in INDEXES}
    out(
        f"  GSIs priced: {len(described)} of the {len(declared)} in schema.INDEXES"
        + (f"; missing from the table: {sorted(declared - described)}" if declared - described else "")
        + f"   {verdict(declared <= described)}"
    )
    out(f"  GET (strongly consistent) of the final item: {item_size(states.final)} B -> 1 RRU per 4 KB started")
    largest = sorted(states.final.items(), key=lambda pair: -item_size({pair[0]: pair[1]}))
    out("  final item by attribute (B): " + ", ".join(f"{name} {item_size({name: value})}" for name, value in largest))
    out("")
    out(f"PRICE TABLE ({prices.region}, public list prices as of {prices.as_of}; no free tier)")
    for what, price in prices.rows():
        out(f"  {what:48s} {price}")
    out("")
    out("DOLLARS PER MILLION JOBS (request charges + log ingestion)")
    for line in lines:
        tag = "" if line.system else "   [job's own work, shown apart]"
        out(
            f"  {line.service:10s} {line.what:40s} {line.quantity_per_job:10.3f} {line.unit:30s} "
            f"${line.dollars_per_million_jobs:8.3f}{tag}"
        )
    system = sum(line.dollars_per_million_jobs for line in lines if line.system)
    job_work = sum(line.dollars_per_million_jobs for line in lines if not line.system)
    cloudwatch = sum(line.quantity_per_job for line in lines if line.service == "cloudwatch")
    out(
        f"  SYSTEM TOTAL ${system:.3f} per million jobs   target < ${TARGET_DOLLARS_PER_MILLION:.2f}  "
        f"{verdict(system < TARGET_DOLLARS_PER_MILLION)}   (+ ${job_work:.3f} of the job's own S3 requests)"
    )
    out(f"  CloudWatch API calls per job: {cloudwatch:.3f} (should be 0)  {verdict(cloudwatch == 0)}")
    log_lines = median_of([run.log_lines / max(run.completed, 1) for run in runs])
    log_bytes = median_of([run.log_bytes / max(run.completed, 1) for run in runs])
    out(
        f"  stdout+stderr of all our processes: {log_bytes:.0f} B and {log_lines:.2f} lines per job "
        f"(median); by kind, first run:"
    )
    first = runs[0]
    for kind, size in sorted(first.log_kinds.items(), key=lambda pair: -pair[1])[:12]:
        out(f"      {kind:50s} {size / max(first.completed, 1):7.1f} B/job")


def report_throughput(
    results: Results, ceiling: dict[str, float], calls: dict[str, dict[str, float]], out: Out
) -> None:
    runs = results.bursts
    out("")
    per_job_requests = emulator_requests(calls)
    mixed = mixed_ceiling(ceiling, calls) if ceiling else 0.0
    bound = mixed / per_job_requests if per_job_requests and mixed else 0.0
    out("END TO END (submit-to-terminal, from the client's send time to the job's terminal transition time)")
    deep_names = [name for name in ceiling if name.startswith("SendMessage@")]
    deep_bound = 0.0
    if deep_names and per_job_requests:
        deep = {"PutItem": ceiling["PutItem"], "SendMessage": ceiling[deep_names[0]]}
        deep_bound = mixed_ceiling(deep, calls) / per_job_requests
        out(
            f"  emulator bound behind a backlog like the burst's ({deep_names[0]}): {deep_bound:.1f} jobs/s; the "
            f"burst left {median_of([run.max_queue_depth for run in runs]):.0f} messages waiting after its submits"
        )
    if bound:
        out(
            f"  emulator bound: mixed ceiling {mixed:.0f} req/s / {per_job_requests:.2f} emulator requests per job "
            f"(S3 job work included) = {bound:.1f} jobs/s"
        )
    replay_rates = {
        depth: median_of([r.jobs_per_s for r in results.replays if r.backlog == depth])
        for depth in sorted({r.backlog for r in results.replays})
    }
    for depth, replay_rate in replay_rates.items():
        out(
            f"  emulator ceiling for our exact per-job calls (one process, {REPLAY_THREADS} threads replaying put, "
            f"batched send/receive/read/delete, S3 read and write, completion from PENDING; backlog {depth}): "
            f"{replay_rate:.1f} jobs/s"
        )
    for name, series in (("burst", runs), (f"steady {results.steady_rate:.1f}/s", results.steadies)):
        if not series:
            continue
        rate = median_of([run.jobs_per_s for run in series])
        lat = summarize_latencies([value for run in series for value in run.latencies_s])
        fraction = rate / bound if bound else 0.0
        out(
            f"  {name:14s}: {series[0].jobs} jobs x {len(series)} runs, {rate:6.1f} jobs/s (runs "
            f"{[round(run.jobs_per_s, 1) for run in series]}), {lat.row()}"
        )
        load_cpu = median_of([run.loadgen_cpu_share for run in series])
        cpu = {
            role: median_of([run.cpu_by_role.get(role, 0.0) / run.wall_s for run in series])
            for role in series[0].cpu_by_role
        }
        out(
            f"      CPU cores used: load generator {load_cpu:.2f}; "
            + ", ".join(f"{r} {v:.2f}" for r, v in sorted(cpu.items()))
            + f"; other processes on the machine {median_of([run.other_cpu_cores for run in series]):.2f}"
        )
        if bound and name == "burst":
            out(
                f"      = {fraction:.0%} of the emulator bound   target >= {TARGET_E2E_FRACTION:.0%}  "
                f"{verdict(fraction >= TARGET_E2E_FRACTION)}"
            )
            if deep_bound:
                out(
                    f"      = {rate / deep_bound:.0%} of the bound behind a backlog   target >= "
                    f"{TARGET_E2E_FRACTION:.0%}  {verdict(rate / deep_bound >= TARGET_E2E_FRACTION)}"
                )
            for depth, replay_rate in replay_rates.items():
                share = rate / replay_rate if replay_rate else 0.0
                out(
                    f"      = {share:.0%} of the emulator ceiling for our exact calls (backlog {depth})   target >= "
                    f"{TARGET_E2E_FRACTION:.0%}  {verdict(share >= TARGET_E2E_FRACTION)}"
                )
        elif bound:
            out(f"      = {fraction:.0%} of the emulator bound (below saturation by design)")


def usage_by_role(posts: list[dict[str, Any]]) -> list[tuple[str, int, float]]:
    """(role, peak RSS in bytes, median CPU in cores) of each process role over the repeated runs, by role name."""
    roles = sorted({role for p in posts for role in p["rss"]})
    return [
        (role, max(p["rss"].get(role, 0) for p in posts), median_of([p["cpu"].get(role, 0.0) for p in posts]))
        for role in roles
    ]


def report_post(results: Results, ceiling: dict[str, float], calls: dict[str, dict[str, float]], out: Out) -> None:
    posts = results.posts
    clients = posts[0].get("clients", 16)
    rps = median_of([p["rps"] for p in posts])
    p50 = median_of([p["p50_ms"] for p in posts])
    p99 = median_of([p["p99_ms"] for p in posts])
    out("")
    out(f"API POST /api/v1/jobs, 16 clients (closed loop), median of {len(posts)} runs")
    out("  system (worker running: the one moto process serves the submit path and the jobs' whole pipeline)")
    out(
        f"  {rps:.1f} req/s (runs {[round(p['rps'], 1) for p in posts]})   target >= "
        f"{TARGET_POST_RPS:.0f}  {verdict(rps >= TARGET_POST_RPS)}"
    )
    out(
        f"  p50 {p50:.1f} ms, p99 {p99:.1f} ms   target p99 <= {TARGET_POST_P99_MS:.0f} ms  "
        f"{verdict(p99 <= TARGET_POST_P99_MS)}"
    )
    out(
        f"  first {EARLY_WINDOW_S:.0f} s only (queue still shallow): "
        f"{median_of([p.get('early_rps', 0.0) for p in posts]):.1f} req/s, "
        f"p50 {median_of([p.get('early_p50_ms', 0.0) for p in posts]):.1f} ms, "
        f"p99 {median_of([p.get('early_p99_ms', 0.0) for p in posts]):.1f} ms"
    )
    if ceiling:
        # One moto process serves every request of a POST in turn: its bound is the submit mix at the ceiling.
        submit_mix = {"submit": calls.get("submit") or {"dynamodb.PutItem": 1.0, "sqs.SendMessage": 1.0}}
        per_post = sum(submit_mix["submit"].values())
        bound = mixed_ceiling(ceiling, submit_mix) / per_post
        out(
            f"  emulator bound for POST: {per_post:.2f} requests per POST at the mixed ceiling = {bound:.1f} POST/s; "
            f"measured = {rps / bound:.0%} of it. With {clients} closed-loop clients at that rate the mean latency "
            f"cannot be below {clients / bound * 1000:.0f} ms (Little's law)"
        )
    for role, peak, cpu in usage_by_role(posts):
        judged = role in ("api", "worker", "dlq poller")
        tail = f"target < 200 MB  {verdict(peak < TARGET_RSS_BYTES)}" if judged else "(moto's state lives here)"
        out(f"  RSS peak {role:26s} {peak / 2**20:6.1f} MB  CPU {cpu:.2f} cores   {tail}")
    out(
        f"  load generator CPU {median_of([p['loadgen_cpu'] for p in posts]):.2f} cores; queue depth at the end "
        f"{[p['queue_depth_end'] for p in posts]}; errors {[p['errors'] for p in posts]}; "
        f"other processes on the machine {median_of([p.get('other_cpu', 0.0) for p in posts]):.2f} cores"
    )
    if results.posts_paused:
        report_post_paused(
            results.posts_paused, rps, ceiling, out, submit_replay=median_of(results.submit_replays or [0.0])
        )


def submit_bound(ceiling: dict[str, float], per_post: dict[str, float]) -> float:
    """POST/s one moto process can serve when it serves only the submit path: the API's calls per POST (PutItem and
    its share of a SendMessageBatch) at the ceiling's rates."""
    total = sum(per_post.values())
    if not ceiling or not total:
        return 0.0
    return mixed_ceiling(ceiling, {"submit": per_post}) / total


def report_post_paused(
    paused_posts: list[dict[str, Any]],
    system_rps: float,
    ceiling: dict[str, float],
    out: Out,
    submit_replay: float = 0.0,
) -> None:
    clients = paused_posts[0].get("clients", 16)
    rps = median_of([p["rps"] for p in paused_posts])
    p50 = median_of([p["p50_ms"] for p in paused_posts])
    p99 = median_of([p["p99_ms"] for p in paused_posts])
    out(
        f"  API capacity (worker paused: SIGSTOP for the whole run on a fresh all-in-one, so moto serves only the "
        f"submit path), same {clients} clients, median of {len(paused_posts)} runs"
    )
    out(
        f"  {rps:.1f} req/s (runs {[round(p['rps'], 1) for p in paused_posts]})   target >= "
        f"{TARGET_POST_RPS:.0f}  {verdict(rps >= TARGET_POST_RPS)}"
    )
    out(
        f"  p50 {p50:.1f} ms, p99 {p99:.1f} ms   target p99 <= {TARGET_POST_P99_MS:.0f} ms  "
        f"{verdict(p99 <= TARGET_POST_P99_MS)}"
    )
    ops = sorted({op for p in paused_posts for op in p.get("calls_per_post", {})})
    per_post = {op: median_of([p.get("calls_per_post", {}).get(op, 0.0) for p in paused_posts]) for op in ops}
    out(
        "  API's AWS requests per POST (measured, worker paused): "
        + (", ".join(f"{op} {count:.3f}" for op, count in per_post.items()) or "none counted")
    )
    bound = submit_bound(ceiling, per_post)
    if bound:
        out(
            f"  emulator submit bound: {sum(per_post.values()):.2f} requests per POST at the ceiling = {bound:.1f} "
            f"POST/s; API capacity = {rps / bound:.0%} of it, system (worker running) {system_rps:.1f} req/s = "
            f"{system_rps / bound:.0%} of it"
        )
        deep = sorted(name for name in ceiling if name.startswith("SendMessage@"))
        if deep:
            # The paused run leaves thousands of messages in the queue and moto's SQS slows with depth.
            deep_bound = submit_bound({**ceiling, "SendMessage": ceiling[deep[0]]}, per_post)
            out(
                f"      with SQS at its behind-a-backlog rate ({deep[0]}): {deep_bound:.1f} POST/s; "
                f"API capacity = {rps / deep_bound:.0%} of it"
            )
    if submit_replay:
        out(
            f"  emulator ceiling for our exact submit calls (the API's item and conditional put, one SendMessageBatch "
            f"per ten; {REPLAY_THREADS} threads of one process, no HTTP): {submit_replay:.1f} POST/s; API capacity = "
            f"{rps / submit_replay:.0%} of it   target >= {TARGET_E2E_FRACTION:.0%}  "
            f"{verdict(rps / submit_replay >= TARGET_E2E_FRACTION)}"
        )
    for role, peak, cpu in usage_by_role(paused_posts):
        if role == "worker":
            # A stopped process neither grows nor uses CPU: its figure here is its idle size, judged above.
            tail = "PAUSED (SIGSTOP): idle size, not judged; judged in the system run above"
        elif role in ("api", "dlq poller"):
            tail = f"target < 200 MB  {verdict(peak < TARGET_RSS_BYTES)}"
        else:
            tail = "(moto's state lives here)"
        out(f"  RSS peak {role:26s} {peak / 2**20:6.1f} MB  CPU {cpu:.2f} cores   {tail}")
    out(
        f"  load generator CPU {median_of([p['loadgen_cpu'] for p in paused_posts]):.2f} cores; queue depth at the end "
        f"{[p['queue_depth_end'] for p in paused_posts]} (nothing drained: worker paused); errors "
        f"{[p['errors'] for p in paused_posts]}; "
        f"other processes on the machine {median_of([p.get('other_cpu', 0.0) for p in paused_posts]):.2f} cores"
    )


def report_concurrency(
    results: Results, ceiling: dict[str, float], calls: dict[str, dict[str, float]], out: Out
) -> None:
    out("")
    out("WORKER CONCURRENCY (I/O-bound bench_io_wait, 200 ms per job, backlog drained after the worker resumes)")
    levels = sorted(results.concurrency)
    base = None
    for level in levels:
        entries = results.concurrency[level]
        rate = median_of([e["jobs_per_s"] for e in entries])
        if base is None:
            base = rate / level
        jobs = entries[0]["jobs"]
        level_calls = per_job(entries[0]["calls"], max(entries[0]["completed"], 1))
        requests = emulator_requests(level_calls)
        # A backlog of 100 or more is drained: moto's SQS calls then run at its behind-a-backlog rate.
        deep_names = [name for name in ceiling if name.startswith("SendMessage@")]
        rates = dict(ceiling)
        if deep_names and jobs >= 100:
            rates["SendMessage"] = ceiling[deep_names[0]]
        mixed = mixed_ceiling(rates, level_calls) if ceiling else 0.0
        bound = mixed / requests if requests and mixed else 0.0
        linear = rate / (base * level) if base else 0.0
        cpu = entries[0]["cpu"]
        # The emulator is one GIL-bound process: at ~0.8 of a core busy it serves no more, whatever the mix.
        emulator_cores = cpu.get("local (moto + supervisor)", 0.0) / entries[0]["wall_s"]
        saturated = (bound and rate >= TARGET_E2E_FRACTION * bound) or emulator_cores >= EMULATOR_SATURATED_CORES
        busy = ", ".join(f"{r} {v / entries[0]['wall_s']:.2f}" for r, v in sorted(cpu.items()))
        busy += f", other processes {median_of([e.get('other_cpu', 0.0) for e in entries]):.2f}"
        out(
            f"  c={level:3d}: {rate:6.1f} jobs/s (ideal {level / 0.2:5.0f}, {linear:4.0%} of linear; backlog {jobs}; "
            f"{requests:.2f} req/job; emulator bound {bound:.0f} jobs/s = {rate / bound if bound else 0:.0%})  "
            f"{'saturated' if saturated else verdict(linear >= TARGET_LINEARITY)}   cpu: {busy}"
        )


# --- main -----------------------------------------------------------------------------------------------------------


def machine() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    import moto

    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, "
        f"moto {moto.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--scenarios",
        default="ceiling,burst,steady,post,concurrency,batch,priority,celery",
        help="comma-separated sections to run; e.g. --scenarios priority runs only the priority figure; "
        "`memory` (worker RSS under worst-case jobs) runs only when named",
    )
    parser.add_argument("--priority-backlog", type=int, default=PRIORITY_BACKLOG, help="low jobs ahead of the high one")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=500, help="burst size (process_document jobs)")
    parser.add_argument("--steady-s", type=float, default=20.0)
    parser.add_argument(
        "--steady-rate", type=float, default=STEADY_RATE, help="jobs/s; default the rate of the steady target"
    )
    parser.add_argument("--post-s", type=float, default=30.0)
    parser.add_argument("--post-clients", type=int, default=16)
    parser.add_argument("--levels", default="1,4,16,64")
    parser.add_argument("--backlog-cap", type=int, default=400)
    parser.add_argument("--batch-jobs", type=int, default=2000, help="jobs per mode of the batch scenario")
    parser.add_argument("--celery-tasks", type=int, default=CELERY_TASKS, help="tasks (and our jobs) per run")
    parser.add_argument("--markdown", type=Path, help="also write the output, command and date to this file")
    args = parser.parse_args(argv)
    if not (
        1 <= args.repeats <= 10
        and 1 <= args.jobs <= 5000
        and args.post_s <= 120
        and args.steady_s <= 120
        and 1 <= args.batch_jobs <= 10_000
        and 1 <= args.celery_tasks <= 5000
    ):
        parser.error("bounds: repeats 1-10, jobs 1-5000, batch jobs 1-10000, celery tasks 1-5000, durations <= 120 s")
    scenarios = {name.strip() for name in args.scenarios.split(",") if name.strip()}

    captured: list[str] = []

    def out(line: str) -> None:
        print(line, flush=True)
        captured.append(line)

    started = datetime.now(UTC)
    cpu_started = resource.getrusage(resource.RUSAGE_SELF)
    out(f"benchmark started {started:%Y-%m-%d %H:%M:%S} UTC on {machine()}")
    results = Results()
    prices = PriceTable()
    if "ceiling" in scenarios:
        out("[ceiling]")
        scenario_ceiling(results, out, args.repeats, int(args.jobs * 0.8))
    if "burst" in scenarios:
        out("[burst]")
        scenario_burst(results, out, args.repeats, args.jobs)
    if "steady" in scenarios:
        rate = min(max(args.steady_rate, 1.0), 200.0)
        out(f"[steady] {rate:.1f} jobs/s for {args.steady_s:.0f} s")
        scenario_steady(results, out, args.repeats, args.steady_s, rate)
    if "post" in scenarios:
        out(f"[post] {args.post_clients} clients for {args.post_s:.0f} s")
        scenario_post(results, out, args.repeats, args.post_s, args.post_clients)
    if "concurrency" in scenarios:
        out("[concurrency]")
        levels = [int(level) for level in args.levels.split(",")]
        scenario_concurrency(results, out, args.repeats, levels, args.backlog_cap)
    if "batch" in scenarios:
        out(f"[batch] {args.batch_jobs} jobs per mode: POST /api/v1/jobs/batch versus POST /api/v1/jobs")
        scenario_batch(
            out,
            args.repeats,
            args.batch_jobs,
            stack_env=stack_env(),
            body_for=batch_body,
            prepare=lambda stack: Env.of(stack).resources.documents_bucket,
        )
    if "priority" in scenarios:
        out(f"[priority] one high job behind {args.priority_backlog} low jobs of {PRIORITY_WAIT_MS} ms")
        scenario_priority(results, out, args.repeats, args.priority_backlog)
    if "memory" in scenarios:
        out("[memory] worker RSS under 16 concurrent worst-case jobs (largest params each type accepts)")
        scenario_memory(out, args.repeats, stack_env=stack_env(), prepare=memory_prepare)
    if "celery" in scenarios:
        out(f"[celery] {args.celery_tasks} no-op tasks: Celery (SQS + DynamoDB backend, -P threads -c 16) vs ours")
        scenario_celery(results, out, args.repeats, args.celery_tasks)
    report(results, out, prices)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = (datetime.now(UTC) - started).total_seconds()
    out(
        f"benchmark took {elapsed:.0f} s; its own CPU "
        f"{usage.ru_utime + usage.ru_stime - cpu_started.ru_utime - cpu_started.ru_stime:.0f} s"
    )
    if args.markdown:
        command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
        write_markdown(args.markdown, command.strip(), started, captured)
    return 0


KEPT_SECTION = "\n## Findings"


def write_markdown(path: Path, command: str, started: datetime, lines: list[str]) -> None:
    """Writes the recorded run; a hand-written "## Findings" section already in the file is kept below it."""
    kept = ""
    if path.exists():
        existing = path.read_text(encoding="utf-8")
        if KEPT_SECTION in existing:
            kept = existing[existing.index(KEPT_SECTION) :]
    body = "\n".join(lines)
    path.write_text(
        "# Benchmarks\n\n"
        f"Recorded by `{command}` (also `make bench`) on {started:%Y-%m-%d %H:%M} UTC, {machine()}.\n"
        "Each scenario starts a fresh `python -m runtime.local` (empty table and queues); figures are medians of the "
        "runs, ratios are against the emulator ceiling measured in the same run.\n\n"
        f"```text\n{body}\n```\n{kept}",
        encoding="utf-8",
    )


if __name__ == "__main__":
    sys.exit(main())


_ = (json, percentile)  # re-exported for interactive use
