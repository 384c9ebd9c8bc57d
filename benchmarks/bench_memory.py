"""Worker memory under worst-case jobs (issue 11, defect 3): 16 jobs at once (the worker's default concurrency),
each with the largest params its type accepts after the bounds of runtime/job_types, submitted through the API
while the worker is paused, then run together. The worker's RSS is sampled from /proc every 50 ms; the verdict is
its peak against TARGET_PEAK_RSS_BYTES.

The worst cases: transform_data with 5,000 records grown by `default` to the output bounds (bytes and values) and
then sorted and deduplicated (every record kept); generate_report with as many distinct groups as the body limit takes
(each with wide numbers) rendered as JSON; process_document of the largest source it reads (MAX_SOURCE_BYTES, streamed
chunk by chunk). Each body stays within the API's body limit."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from benchmarks.bench_stack import LocalStack, paused, rss_bytes
from runtime.job_types.generate_report import MAX_ROWS
from runtime.job_types.process_document import MAX_SOURCE_BYTES, READ_CHUNK_BYTES
from runtime.job_types.transform_data import MAX_RECORDS, TransformDataParams
from runtime.settings import Settings

TARGET_PEAK_RSS_BYTES = 300 * 1024 * 1024
MAX_BODY_BYTES = Settings.model_fields["max_body_bytes"].default  # the all-in-one runs the default
CONCURRENT_JOBS = Settings.model_fields["worker_concurrency"].default  # 16: one job per worker slot
SAMPLE_S = 0.05
MEMORY_TIMEOUT_S = 600.0
# moto's item operations slow down with the values an item holds: a worst-case job's item (thousands of values)
# takes seconds per read or update there, and 16 at once far longer than the runtime's defaults (5 s for the worker,
# a 5 s request deadline for the API): the scenario's all-in-one waits longer.
EMULATOR_PATIENCE = {
    "JOBS_AWS_READ_TIMEOUT_S": "120",
    "JOBS_REQUEST_DEADLINE_S": "60",
    "JOBS_BATCH_REQUEST_DEADLINE_S": "120",  # above twice the API's call bound (2 x 26 s), as settings require
    "JOBS_API_AWS_READ_TIMEOUT_S": "25",
    "JOBS_API_AWS_MAX_ATTEMPTS": "2",
}
MEMORY_SOURCE_BYTES = MAX_SOURCE_BYTES  # process_document's worst case: the largest source it accepts
# Of the 16 jobs: the two expanding types get most slots, process_document the rest.
MIX = (("transform_data", 7), ("generate_report", 7), ("process_document", 2))

Out = Callable[[str], None]


@dataclass
class MemoryRun:
    idle_rss: int
    peak_rss: int
    statuses: dict[str, int]
    most_at_once: int  # jobs PROCESSING at the same moment (from their transition times)
    wall_s: float
    body_bytes: dict[str, int]


def transform_body(prefix: str) -> dict[str, Any]:
    """5,000 distinct records, four `default` fields of the longest value the bounds allow, then a sort and a
    dedupe over whole records (which keeps all of them): the most a transform_data job may make a worker hold."""

    def body(width: int) -> dict[str, Any]:
        defaults = [{"op": "default", "field": f"d{n}", "value": "v" * width} for n in range(4)]
        return {
            "records": [{"i": index} for index in range(MAX_RECORDS)],
            "operations": [*defaults, {"op": "sort", "by": ["i"], "descending": True}, {"op": "dedupe"}],
        }

    low, high = 0, 4096
    while low < high:  # the widest value still accepted
        middle = (low + high + 1) // 2
        try:
            TransformDataParams.model_validate(body(middle))
            low = middle
        except ValidationError:
            high = middle - 1
    return {"type": "transform_data", "params": body(low), "metadata": {"bench": prefix}}


def report_body(bucket: str, prefix: str, index: int) -> dict[str, Any]:
    """As many rows as the body limit takes (up to 5,000), each its own group, with sums 20 digits wide, as a
    JSON report (larger than CSV)."""

    def body(rows: int) -> dict[str, Any]:
        return {
            "type": "generate_report",
            "params": {
                "title": "t" * 200,
                "rows": [{"g": row, "v": row * 1e15} for row in range(rows)],
                "group_by": "g",
                "metric": "v",
                "format": "json",
                "destination": f"s3://{bucket}/{prefix}/report-{index}.json",
            },
        }

    low, high = 1, MAX_ROWS
    while low < high:  # the most rows whose body the API takes
        middle = (low + high + 1) // 2
        if body_bytes(body(middle)) <= MAX_BODY_BYTES:
            low = middle
        else:
            high = middle - 1
    return body(low)


def body_bytes(body: dict[str, Any]) -> int:
    """The body as the benchmark's client sends it."""
    return len(httpx.Request("POST", "http://127.0.0.1/", json=body).content)


def document_body(bucket: str, prefix: str, index: int) -> dict[str, Any]:
    return {
        "type": "process_document",
        "params": {
            "source": f"s3://{bucket}/{prefix}/source.txt",
            "destination": f"s3://{bucket}/{prefix}/{index}.json",
        },
    }


def _sample_peak(pid: int, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        value = rss_bytes(pid)
        if value is not None:
            peak[0] = max(peak[0], value)
        stop.wait(SAMPLE_S)


def _most_at_once(items: list[dict[str, Any]]) -> int:
    events: list[tuple[str, int]] = []
    for item in items:
        transitions = item.get("transitions", {})
        ended = transitions.get(item.get("status", ""))
        if "PROCESSING" in transitions and ended:
            events += [(transitions["PROCESSING"], 1), (ended, -1)]
    running = most = 0
    for _, change in sorted(events):
        running += change
        most = max(most, running)
    return most


def measure_memory(stack_env: dict[str, str], prepare: Callable[[LocalStack], tuple[Any, str, str]]) -> MemoryRun:
    """One run on a fresh all-in-one; `prepare` gives (s3 client, documents bucket, the tenant's key prefix)."""
    with LocalStack(env={**stack_env, **EMULATOR_PATIENCE}) as stack:
        s3, bucket, tenant_prefix = prepare(stack)
        prefix = f"{tenant_prefix}memory-{uuid.uuid4().hex[:6]}"
        s3.put_object(Bucket=bucket, Key=f"{prefix}/source.txt", Body=_document_text(MEMORY_SOURCE_BYTES))
        worker = stack.pid_of("worker")
        assert worker is not None, "no worker process"
        bodies: list[dict[str, Any]] = []
        for job_type, count in MIX:
            for index in range(count):
                if job_type == "transform_data":
                    bodies.append(transform_body(prefix))
                elif job_type == "generate_report":
                    bodies.append(report_body(bucket, prefix, index))
                else:
                    bodies.append(document_body(bucket, prefix, index))
        sizes = {body["type"]: body_bytes(body) for body in bodies}
        idle = rss_bytes(worker) or 0
        job_ids: list[str] = []
        with httpx.Client(base_url=stack.api_url, timeout=60, headers=stack.auth_headers) as client:
            with paused(worker):  # all 16 are waiting when the worker resumes: they run together
                for body in bodies:
                    answer = client.post("/api/v1/jobs", json=body)
                    if answer.status_code != 201:
                        raise RuntimeError(f"{body['type']} refused: {answer.status_code} {answer.text[:300]}")
                    job_ids.append(answer.json()["jobId"])
            stop, peak = threading.Event(), [idle]
            sampler = threading.Thread(target=_sample_peak, args=(worker, stop, peak), daemon=True)
            started = time.monotonic()
            sampler.start()
            items: list[dict[str, Any]] = []
            try:
                while time.monotonic() - started < MEMORY_TIMEOUT_S:
                    items = [client.get(f"/api/v1/jobs/{job_id}").json() for job_id in job_ids]
                    if all(item.get("status") in ("SUCCEEDED", "FAILED_FINAL") for item in items):
                        break
                    time.sleep(1.0)
            finally:
                stop.set()
                sampler.join()
            wall = time.monotonic() - started
    statuses: dict[str, int] = {}
    for item in items:
        key = f"{item.get('jobType')} {item.get('status')}"
        statuses[key] = statuses.get(key, 0) + 1
    return MemoryRun(idle, peak[0], statuses, _most_at_once(items), wall, sizes)


def _document_text(size: int) -> bytes:
    """Lines of ever new words, so the summary's word table fills up to its bound (the costly case)."""
    parts: list[bytes] = []
    total = 0
    number = 0
    while total < size:
        line = (" ".join(f"word{number + offset:x}" for offset in range(12)) + "\n").encode()
        parts.append(line)
        total += len(line)
        number += 12
    return b"".join(parts)[:size]


def scenario_memory(
    out: Out, repeats: int, *, stack_env: dict[str, str], prepare: Callable[[LocalStack], tuple[Any, str, str]]
) -> list[MemoryRun]:
    runs: list[MemoryRun] = []
    for repeat in range(repeats):
        run = measure_memory(stack_env, prepare)
        runs.append(run)
        statuses = ", ".join(f"{name} {count}" for name, count in sorted(run.statuses.items()))
        bodies = ", ".join(f"{name} {size / 1024:.0f} KiB" for name, size in sorted(run.body_bytes.items()))
        out(
            f"  run {repeat + 1}: worker RSS idle {run.idle_rss / 2**20:.1f} MB, peak {run.peak_rss / 2**20:.1f} MB "
            f"(+{(run.peak_rss - run.idle_rss) / 2**20:.1f} MB) with {len(MIX) and CONCURRENT_JOBS} jobs, at most "
            f"{run.most_at_once} running at once; {run.wall_s:.0f} s; {statuses}; bodies: {bodies}"
        )
    peak = max(run.peak_rss for run in runs)
    out(
        f"  WORKER PEAK RSS {peak / 2**20:.1f} MB under {CONCURRENT_JOBS} concurrent worst-case jobs: target < "
        f"{TARGET_PEAK_RSS_BYTES // 2**20} MB  {'PASS' if peak < TARGET_PEAK_RSS_BYTES else 'FAIL'}"
    )
    out(
        f"  process_document read a {MEMORY_SOURCE_BYTES // 2**20} MB source (its limit), streamed in "
        f"{READ_CHUNK_BYTES // 2**20} MiB chunks with a bounded word table"
    )
    return runs
