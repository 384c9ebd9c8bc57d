"""Worker tests: real adapters on the session's moto server, with short timings (visibility 2 s, wait 1 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import tests.worker.plugin_jobs  # noqa: F401 - registers test_slow in this process too
from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.adapters.s3_objects import S3ObjectStore
from runtime.adapters.sqs_queue import SqsJobQueue
from runtime.aws_clients import build_client
from runtime.domain.callbacks import Callback
from runtime.domain.job import Job, JobStatus, Priority
from runtime.domain.ports import JobMessage
from runtime.settings import Settings, load_settings
from runtime.worker.runner import Worker
from tests.adapters.resources import create_resources, queue_depth
from tests.waiting import WAIT_LIMIT_S, wait_for

REPO = Path(__file__).resolve().parents[2]
VISIBILITY_S = 2
TENANT = "acme"  # the tenant of the jobs these tests submit; their objects live under tenants/acme/
# Settings that keep an in-test worker quick against moto: short visibility and receive wait, one-second
# backoff, deletes flushed almost at once. The queue must be created with the same visibility timeout.
QUICK_WORKER_SETTINGS: dict[str, Any] = {
    "visibility_timeout_s": VISIBILITY_S,
    "receive_wait_s": 1,
    "backoff_base_s": 1.0,
    "delete_linger_s": 0.05,
}


@dataclass
class WorkerEnv:
    endpoint: str
    settings: Settings
    store: DynamoDbJobStore
    queue: SqsJobQueue
    objects: S3ObjectStore
    sqs: Any
    s3: Any
    tmp: Path

    def submit(
        self,
        job_type: str,
        params: dict[str, Any],
        *,
        send: bool = True,
        pending_since: datetime | None = None,
        tenant: str = TENANT,
        callback: Callback | None = None,
        from_submit: bool = False,
    ) -> Job:
        """Stores a PENDING job and sends its message: by default an unmarked one (claimed first, as a retry's or
        an older message is); `from_submit`: as the API's submit sends it (the worker may run it unclaimed)."""
        now = datetime.now(UTC)
        job_id = str(uuid.uuid4())
        job = Job(
            job_id=job_id,
            status=JobStatus.PENDING,
            job_type=job_type,
            priority=Priority.NORMAL,
            params=params,
            metadata={},
            created_at=now,
            updated_at=now,
            trace_id=uuid.uuid4().hex,
            fingerprint="0" * 64,
            tenant=tenant,
            transitions={"PENDING": now},
            pending_since=pending_since or now,
            callback=callback,
        )
        assert self.store.create(job).created
        if send:
            self.queue.send(JobMessage.for_job(job, from_submit=from_submit))
        return job

    def submit_gated(self) -> tuple[Job, str, Path]:
        """A test_slow job that holds until its gate file exists: (job, its run log, its gate)."""
        run_log, gate = str(self.tmp / "runs.log"), self.tmp / "gate"
        return self.submit("test_slow", {"run_log": run_log, "gate": str(gate)}), run_log, gate

    def job(self, job_id: str) -> Job:
        found = self.store.get(job_id)
        assert found is not None, f"no job {job_id}"
        return found

    def wait_for(self, what: str, condition: Callable[[], bool], limit_s: float = WAIT_LIMIT_S) -> None:
        wait_for(what, condition, limit_s)

    def wait_terminal(self, job_id: str) -> Job:
        self.wait_for(f"job {job_id} to end", lambda: self.job(job_id).is_terminal)
        return self.job(job_id)

    def queue_depth(self, url: str | None = None) -> int:
        return queue_depth(self.sqs, url or self.settings.queue_url)

    def process_env(self, **extra: str) -> dict[str, str]:
        """Environment for `python -m runtime.worker` against this env's resources."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("JOBS_")}
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            JOBS_TABLE_NAME=self.settings.table_name,
            JOBS_ACCESS_TABLE_NAME=self.settings.access_table_name,
            JOBS_QUEUE_URL=self.settings.queue_url,
            JOBS_DEAD_LETTER_QUEUE_URL=self.settings.dead_letter_queue_url,
            JOBS_DOCUMENTS_BUCKET=self.settings.documents_bucket,
            JOBS_VISIBILITY_TIMEOUT_S=str(self.settings.visibility_timeout_s),
            JOBS_RECEIVE_WAIT_S=str(self.settings.receive_wait_s),
            JOBS_BACKOFF_BASE_S="1",
            JOBS_BACKOFF_MAX_S="2",
            JOBS_WORKER_CONCURRENCY="4",
            JOBS_SHUTDOWN_DEADLINE_S="10",
            JOBS_REPUBLISH_AFTER_S="60",
            JOBS_WORKER_PLUGINS="tests.worker.plugin_jobs",
            PYTHONPATH=str(REPO),
        )
        env.update(extra)
        return env

    def start_worker_process(self, name: str, **extra: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - handed to the child for its lifetime
        return subprocess.Popen(
            [sys.executable, "-m", "runtime.worker"],
            cwd=REPO,
            env=self.process_env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def process_log(self, name: str) -> list[dict[str, Any]]:
        lines = (self.tmp / f"{name}.log").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture
def worker_env(moto_server: str, tmp_path: Path) -> WorkerEnv:
    # Receives for a leased job also count: the redrive limit sits well above max_attempts.
    return make_worker_env(moto_server, tmp_path, max_receive_count=10)


def make_worker_env(moto_server: str, tmp_path: Path, *, max_receive_count: int) -> WorkerEnv:
    """Fresh resources on the moto server (the queue redriving to its DLQ after `max_receive_count` receives) and
    quick worker settings for them."""
    dynamodb = build_client("dynamodb", region="us-east-1", endpoint_url=moto_server)
    sqs = build_client("sqs", region="us-east-1", endpoint_url=moto_server)
    s3 = build_client("s3", region="us-east-1", endpoint_url=moto_server)
    resources = create_resources(
        moto_server, "wk", visibility_timeout_s=VISIBILITY_S, max_receive_count=max_receive_count
    )
    table, queue_url, dlq_url, bucket = (
        resources.table_name,
        resources.queue_url,
        resources.dead_letter_queue_url,
        resources.bucket,
    )
    settings = load_settings(
        table_name=table,
        access_table_name=resources.access_table_name,
        queue_url=queue_url,
        dead_letter_queue_url=dlq_url,
        documents_bucket=bucket,
        AWS_ENDPOINT_URL=moto_server,
        **QUICK_WORKER_SETTINGS,
        worker_concurrency=4,
        backoff_max_s=2.0,
        shutdown_deadline_s=10.0,
        republish_after_s=1,
        republish_interval_s=1,
    )
    return WorkerEnv(
        endpoint=moto_server,
        settings=settings,
        store=DynamoDbJobStore(dynamodb, table),
        queue=SqsJobQueue(sqs, queue_url),
        objects=S3ObjectStore(s3),
        sqs=sqs,
        s3=s3,
        tmp=tmp_path,
    )


@contextmanager
def running(
    env: WorkerEnv, settings: Settings | None = None, *, count: int = 1, republish: bool = False
) -> Iterator[list[Worker]]:
    """`count` in-process workers on `env` (its settings unless `settings`), stopped on exit."""
    workers = [
        Worker(
            store=env.store,
            queue=env.queue,
            objects=env.objects,
            settings=settings or env.settings,
            republish=republish,
        )
        for _ in range(count)
    ]
    for worker in workers:
        worker.start()
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop(5.0)
