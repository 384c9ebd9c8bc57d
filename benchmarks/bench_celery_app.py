"""The Celery baseline's app (issue 13): SQS broker and DynamoDB result backend on the benchmark's moto, one
no-op task. The worker runs it as `celery -A benchmarks.bench_celery_app worker -P threads -c 16`; the producer is
`python -m benchmarks.bench_celery_app produce N OUT` (`.delay()` N times, first send time and ids into OUT).

Both count their AWS requests in-process as our own processes do (runtime/observability/aws_calls, one JSON file
per process): every botocore API call, and every request of kombu's own pycurl SQS client (its ReceiveMessage
path does not go through botocore's API call).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.client import BaseClient
from celery import Celery
from kombu.asynchronous.aws.sqs.connection import AsyncSQSConnection

from runtime.observability import aws_calls

AWS_URL_ENV = "BENCH_CELERY_AWS_URL"
QUEUE_URL_ENV = "BENCH_CELERY_QUEUE_URL"
TABLE_ENV = "BENCH_CELERY_TABLE"
CALLS_FILE_ENV = "BENCH_CELERY_CALLS_FILE"  # with {pid}, as JOBS_AWS_CALLS_FILE
QUEUE_NAME = "bench-celery"
TABLE_NAME = "bench-celery-results"


def _count_api_calls() -> None:
    """Counts each botocore API call and each request of kombu's async SQS client, once per call."""
    make_api_call = BaseClient._make_api_call
    make_request = AsyncSQSConnection.make_request

    def counted_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        aws_calls.record(self.meta.service_model.service_name, operation_name)
        return make_api_call(self, operation_name, api_params)

    def counted_request(self: Any, operation: str, *args: Any, **kwargs: Any) -> Any:
        aws_calls.record("sqs", operation)
        return make_request(self, operation, *args, **kwargs)

    BaseClient._make_api_call = counted_api_call  # type: ignore[method-assign]
    AsyncSQSConnection.make_request = counted_request  # type: ignore[method-assign]


def make_app() -> Celery:
    aws = urlsplit(os.environ.get(AWS_URL_ENV, "http://127.0.0.1:5000"))
    queue_url = os.environ.get(QUEUE_URL_ENV, "")
    table = os.environ.get(TABLE_ENV, TABLE_NAME)
    celery = Celery("bench_celery")
    celery.conf.update(
        broker_url=f"sqs://testing:testing@{aws.hostname}:{aws.port}",
        broker_transport_options={
            "region": "us-east-1",
            "is_secure": False,
            # A queue made beforehand (the usual production setup): no ListQueues/CreateQueue on the hot path.
            "predefined_queues": {QUEUE_NAME: {"url": queue_url}},
        },
        task_default_queue=QUEUE_NAME,
        result_backend=f"dynamodb://testing:testing@{aws.hostname}:{aws.port}/{table}",
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return celery


app = make_app()


@app.task(name="bench.noop")
def noop() -> None:
    """The baseline's task: nothing, so that only the queue and the result store are measured."""


def produce(count: int, out: Path) -> None:
    """Sends `count` tasks with `.delay()` after one warm-up send (connection and clients made), counting only the
    sends' AWS requests."""
    noop.delay()
    aws_calls.reset()
    first = time.time()
    ids = [noop.delay().id for _ in range(count)]
    ended = time.time()
    out.write_text(
        json.dumps({"first_send": first, "last_send": ended, "ids": ids, "calls": aws_calls.snapshot()}),
        encoding="utf-8",
    )


# Only in the Celery worker and producer the benchmark starts (it hands them the emulator's URL): the patch is
# process-wide, and a process that merely imports this module (the benchmark, the tests) must keep counting each
# call once.
if os.environ.get(AWS_URL_ENV):
    _count_api_calls()
    if os.environ.get(CALLS_FILE_ENV):
        aws_calls.start_file_dump(os.environ[CALLS_FILE_ENV])


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "produce":
        sys.exit("usage: python -m benchmarks.bench_celery_app produce COUNT OUT")
    produce(int(sys.argv[2]), Path(sys.argv[3]))
