"""The Celery baseline (issue 13): Celery from PyPI with its SQS broker and DynamoDB result backend on a fresh
all-in-one's moto (the same emulator the rest of the benchmark uses), `-P threads -c 16`, a no-op task, a producer
calling `.delay()` directly. Measures its end-to-end rate (tasks / (last completion - first send)), its AWS
requests per task (counted in its own processes, benchmarks/bench_celery_app.py) and its CPU per task (/proc)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from benchmarks import bench_celery_app as celery_app
from benchmarks.bench_emulator import aws_client
from benchmarks.bench_stack import POLL_S, REPO, Calls, LocalStack, cpu_seconds, merge, read_call_files, subtract

CELERY_THREADS = 16
READY_TIMEOUT_S = 60.0
COMPLETE_TIMEOUT_S = 180.0
DUMP_SETTLE_S = 1.6  # the call files are rewritten every second


@dataclass
class CeleryRun:
    tasks: int
    completed: int
    tasks_per_s: float  # tasks / (last completion - first send)
    calls: Calls  # producer (sends only) + worker, over the run
    worker_completed: int  # tasks the worker ran in the window (the producer's warm-up task included)
    cpu_s: float  # producer + worker CPU over the run

    @property
    def requests_per_task(self) -> float:
        return sum(sum(ops.values()) for ops in self.calls.values()) / max(self.completed, 1)

    @property
    def cpu_ms_per_task(self) -> float:
        return 1000 * self.cpu_s / max(self.completed, 1)


def _drain(stream: IO[bytes], ready: threading.Event, tail: list[bytes]) -> None:
    for line in iter(stream.readline, b""):
        if b" ready." in line:
            ready.set()
        tail.append(line)
        del tail[:-30]


def _completion_times(dynamodb: Any, table: str, ids: list[str]) -> dict[str, float]:
    """{task id: time its result was stored} for the tasks of `ids` whose result is in the backend's table (a scan:
    Celery's DynamoDB backend keys items by the repr of its bytes key, so the id is read from the stored result)."""
    wanted = set(ids)
    found: dict[str, float] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            task = json.loads(item["result"]["B"]).get("task_id")
            if task in wanted:
                found[task] = float(item["timestamp"]["N"])
    return found


def measure_celery(stack: LocalStack, tasks: int) -> CeleryRun:
    """One run on a started all-in-one: worker up, producer sends `tasks`, waits for every result."""
    sqs = aws_client("sqs", stack.aws_url)
    dynamodb = aws_client("dynamodb", stack.aws_url)
    queue_url = sqs.create_queue(QueueName=celery_app.QUEUE_NAME)["QueueUrl"]
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp:
        calls_dir = Path(tmp)
        env = dict(os.environ)
        env.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true",
                celery_app.AWS_URL_ENV: stack.aws_url,
                celery_app.QUEUE_URL_ENV: queue_url,
                celery_app.TABLE_ENV: celery_app.TABLE_NAME,
                celery_app.CALLS_FILE_ENV: str(calls_dir / "calls.{pid}.json"),
            }
        )
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "benchmarks.bench_celery_app",
                "worker",
                "-P",
                "threads",
                "-c",
                str(CELERY_THREADS),
                "-l",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        ready, tail = threading.Event(), list[bytes]()
        assert worker.stdout is not None
        threading.Thread(target=_drain, args=(worker.stdout, ready, tail), daemon=True).start()
        try:
            if not ready.wait(READY_TIMEOUT_S):
                raise RuntimeError("celery worker not ready:\n" + b"".join(tail).decode(errors="replace"))
            time.sleep(DUMP_SETTLE_S)
            before = merge(list(read_call_files(calls_dir).values()))
            worker_cpu = cpu_seconds(worker.pid) or 0.0
            out_file = calls_dir / "produced.json"
            children_before = _children_cpu_s()
            producer = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_celery_app", "produce", str(tasks), str(out_file)],
                cwd=REPO,
                env={key: value for key, value in env.items() if key != celery_app.CALLS_FILE_ENV},
                capture_output=True,
                timeout=COMPLETE_TIMEOUT_S,
                check=False,
            )
            producer_cpu = _children_cpu_s() - children_before
            if producer.returncode != 0:
                raise RuntimeError("celery producer failed:\n" + producer.stderr.decode(errors="replace")[-2000:])
            produced = json.loads(out_file.read_text(encoding="utf-8"))
            ids: list[str] = produced["ids"]
            deadline = time.monotonic() + COMPLETE_TIMEOUT_S
            done: dict[str, float] = {}
            while time.monotonic() < deadline:
                done = _completion_times(dynamodb, celery_app.TABLE_NAME, ids)
                if len(done) == len(ids):
                    break
                time.sleep(POLL_S)
            time.sleep(DUMP_SETTLE_S)
            worker_calls = subtract(merge(list(read_call_files(calls_dir).values())), before)
            worker_cpu = (cpu_seconds(worker.pid) or 0.0) - worker_cpu
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    first, last = float(produced["first_send"]), max(done.values(), default=0.0)
    return CeleryRun(
        tasks=len(ids),
        completed=len(done),
        tasks_per_s=len(done) / (last - first) if last > first else 0.0,
        calls=merge([produced["calls"], worker_calls]),
        worker_completed=len(done) + 1,
        cpu_s=worker_cpu + producer_cpu,
    )


def _children_cpu_s() -> float:
    """CPU of this process's waited-for children (the producer, once `run` returns)."""
    times = os.times()
    return times.children_user + times.children_system
