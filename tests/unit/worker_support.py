"""The worker-side setups over fakes that several unit tests share: a processor running one "echo" handler, and a
started Worker running one "gate" handler."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from runtime.domain.backoff import Backoff, Jitter
from runtime.domain.processing import MessageProcessor, ProcessingConfig
from runtime.job_types.confinement import Confinement
from runtime.job_types.registry import JobType
from runtime.settings import load_settings
from runtime.worker.runner import Worker
from tests.unit.fakes import FakeClock, FakeQueue, InMemoryJobStore, InMemoryObjects


class Params(BaseModel):
    value: int = 1


def echo_processor(store: InMemoryJobStore, handler: Any) -> MessageProcessor:
    """A processor whose only job type is "echo", run by `handler`."""
    job_type = JobType("echo", Params, handler, "echo")
    return MessageProcessor(
        store=store,
        objects=InMemoryObjects(),
        confinement=Confinement("docs"),
        config=ProcessingConfig(visibility_timeout_s=30, max_attempts=3),
        backoff=Backoff(2.0, 300.0, Jitter.EQUAL, rand=lambda: 0.5),
        clock=FakeClock(),
        job_types=lambda name: job_type if name == "echo" else None,
    )


def started_gate_worker(
    store: InMemoryJobStore, queue: FakeQueue, handler: Any, *, concurrency: int, receive_wait_s: int
) -> Worker:
    """A started worker whose only job type is "gate", run by `handler`, without the republisher."""
    settings = load_settings(
        table_name="t",
        access_table_name="a",
        queue_url="q",
        dead_letter_queue_url="d",
        documents_bucket="b",
        worker_concurrency=concurrency,
        visibility_timeout_s=30,
        receive_wait_s=receive_wait_s,
    )
    gate_type = JobType("gate", Params, handler, "gate")
    worker = Worker(
        store=store,
        queue=queue,
        objects=InMemoryObjects(),
        settings=settings,
        clock=FakeClock(),
        job_types=lambda name: gate_type if name == "gate" else None,
        republish=False,
    )
    worker.start()
    return worker
