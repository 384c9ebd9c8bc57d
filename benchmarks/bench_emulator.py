"""The emulator's own ceiling: simple PutItem and SendMessage from one process against the same moto server,
on a table and queue of the benchmark's own (created here, deleted after)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import boto3
from botocore.config import Config

from runtime.adapters.dynamodb.schema import TABLE_KEY, Attr

CEILING_THREADS = (1, 4)
CEILING_MAX_REQUESTS = 1500
CEILING_MAX_S = 4.0
SENDS_PER_QUEUE = 50


@dataclass(frozen=True)
class Ceiling:
    operation: str
    threads: int
    requests: int
    wall_s: float
    client_cpu_s: float

    @property
    def per_s(self) -> float:
        return self.requests / self.wall_s


def aws_client(service: str, endpoint_url: str, pool: int = 16) -> Any:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    config = Config(max_pool_connections=pool, retries={"mode": "standard", "max_attempts": 3}, read_timeout=30)
    return session.client(service, endpoint_url=endpoint_url, config=config)  # type: ignore[call-overload]


def create_key_only_table(dynamodb: Any, table: str) -> None:
    """An on-demand table with the jobs table's key and no index."""
    dynamodb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": TABLE_KEY.name, "AttributeType": TABLE_KEY.type.value}],
        KeySchema=[{"AttributeName": TABLE_KEY.name, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


class Scratch(NamedTuple):
    """A fresh table and queue, both named `name` ("<prefix>-<suffix>"), and the clients that made them."""

    dynamodb: Any
    sqs: Any
    suffix: str
    name: str
    queue_url: str


def scratch(endpoint_url: str, prefix: str, make_table: Callable[[Any, str], None] = create_key_only_table) -> Scratch:
    dynamodb = aws_client("dynamodb", endpoint_url)
    sqs = aws_client("sqs", endpoint_url)
    suffix = uuid.uuid4().hex[:8]
    name = f"{prefix}-{suffix}"
    make_table(dynamodb, name)
    return Scratch(dynamodb, sqs, suffix, name, sqs.create_queue(QueueName=name)["QueueUrl"])


def run_bounded(call: Callable[[int], None], threads: int, max_requests: int, max_s: float) -> tuple[int, float, float]:
    """Calls `call(0)`, `call(1)`, ... on `threads` threads until `max_requests` calls or `max_s` seconds;
    returns the calls done, the wall time and this process's CPU time."""
    lock = threading.Lock()
    counter = iter(range(max_requests))
    deadline = time.perf_counter() + max_s
    done = [0]

    def loop() -> None:
        while time.perf_counter() < deadline:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            call(index)
            with lock:
                done[0] += 1

    cpu_before = time.process_time()
    started = time.perf_counter()
    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return done[0], time.perf_counter() - started, time.process_time() - cpu_before


def measure_ceiling(endpoint_url: str, backlog: int = 0) -> list[Ceiling]:
    """PutItem and SendMessage rates at 1 and 4 threads of one process, bounded in count and time; then
    SendMessage behind `backlog` waiting messages."""
    dynamodb, sqs, suffix, table, queue_url = scratch(endpoint_url, "bench-ceiling")
    # moto's SendMessage slows as its queue fills: a fresh queue every SENDS_PER_QUEUE sends keeps the depth
    # near zero, so that this is the fresh-state ceiling; the backlog case is measured apart below.
    fresh_queues: list[str] = []
    results: list[Ceiling] = []
    try:
        for threads in CEILING_THREADS:
            prefix = uuid.uuid4().hex[:6]
            run_queues = [
                sqs.create_queue(QueueName=f"bench-ceiling-{suffix}-{threads}-{n}")["QueueUrl"]
                for n in range(CEILING_MAX_REQUESTS // SENDS_PER_QUEUE + 1)
            ]
            fresh_queues.extend(run_queues)

            def put(index: int, prefix: str = prefix) -> None:
                dynamodb.put_item(
                    TableName=table,
                    Item={
                        TABLE_KEY.name: {"S": f"{prefix}-{index}"},
                        Attr.STATUS: {"S": "PENDING"},
                        Attr.ATTEMPTS: {"N": "0"},
                    },
                )

            def send(index: int, prefix: str = prefix, run_queues: list[str] = run_queues) -> None:
                target = run_queues[index // SENDS_PER_QUEUE]
                sqs.send_message(QueueUrl=target, MessageBody=f'{{"jobId":"{prefix}-{index}"}}')

            for name, call in (("PutItem", put), ("SendMessage", send)):
                requests, wall, cpu = run_bounded(call, threads, CEILING_MAX_REQUESTS, CEILING_MAX_S)
                results.append(Ceiling(name, threads, requests, wall, cpu))
        # moto's SQS work grows with the queue's depth: measure again behind a backlog like the burst's.
        for start in range(0, backlog, 10):
            entries = [{"Id": str(n), "MessageBody": '{"jobId":"backlog"}'} for n in range(min(10, backlog - start))]
            sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if backlog:

            def send_deep(index: int) -> None:
                sqs.send_message(QueueUrl=queue_url, MessageBody=f'{{"jobId":"deep-{index}"}}')

            requests, wall, cpu = run_bounded(send_deep, 1, CEILING_MAX_REQUESTS, CEILING_MAX_S)
            results.append(Ceiling(f"SendMessage@{backlog}", 1, requests, wall, cpu))
    finally:
        dynamodb.delete_table(TableName=table)
        for url in [queue_url, *fresh_queues]:
            sqs.delete_queue(QueueUrl=url)
    return results


FLOOR_ITERATIONS = 200


def measure_cpu_floor(endpoint_url: str, iterations: int = FLOOR_ITERATIONS) -> float:
    """CPU ms per iteration of a bare loop of one boto3 PutItem and one SendMessage on one thread of this process:
    the least client CPU a submit can cost in Python with boto3 (issue 13's floor for our CPU per request)."""
    dynamodb, sqs, suffix, table, queue_url = scratch(endpoint_url, "bench-floor")
    try:
        for index in range(10):  # the clients' first requests (endpoint resolution, pools) are not the floor
            dynamodb.put_item(TableName=table, Item={TABLE_KEY.name: {"S": f"warm-{index}"}})
            sqs.send_message(QueueUrl=queue_url, MessageBody='{"jobId":"warm"}')
        cpu_before = time.thread_time()
        for index in range(iterations):
            dynamodb.put_item(
                TableName=table,
                Item={TABLE_KEY.name: {"S": f"{suffix}-{index}"}, Attr.STATUS: {"S": "PENDING"}},
            )
            sqs.send_message(QueueUrl=queue_url, MessageBody=f'{{"jobId":"{suffix}-{index}"}}')
        return 1000 * (time.thread_time() - cpu_before) / iterations
    finally:
        dynamodb.delete_table(TableName=table)
        sqs.delete_queue(QueueUrl=queue_url)
