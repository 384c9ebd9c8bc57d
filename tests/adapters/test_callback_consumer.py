"""The callback queue's long-running consumer against moto's server: a handled message is deleted, one whose
handling failed comes back after the visibility timeout, and the liveness file is touched only while every
consumer thread turns."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from runtime.callbacks.consumer import AllTurned, CallbackConsumer
from runtime.worker.liveness import Liveness
from tests.adapters.resources import queue_depth

TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"


@pytest.fixture
def callback_queue(moto_server: str) -> Iterator[tuple[Any, str]]:
    sqs = boto3.client("sqs", endpoint_url=moto_server)
    # A short visibility timeout so that a failed message comes back quickly.
    url = sqs.create_queue(QueueName=f"cb-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    yield sqs, url
    sqs.delete_queue(QueueUrl=url)


class RecordingHandler:
    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        self.failures = failures

    def handle_message(self, body: str, message_id: str, trace_header: str | None) -> str:
        self.calls.append((body, message_id, trace_header))
        if len(self.calls) <= self.failures:
            raise RuntimeError("job store unavailable")
        return "delivered"


def test_a_handled_message_is_deleted_with_its_body_id_and_trace_header(callback_queue: tuple[Any, str]) -> None:
    sqs, url = callback_queue
    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody='{"jobId": "j-1", "eventId": "e-1"}',
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": TRACE_HEADER}},
    )
    handler = RecordingHandler()
    consumer = CallbackConsumer(sqs, url, handler, wait_time_s=1)

    assert consumer.poll_once() == 1

    assert handler.calls == [('{"jobId": "j-1", "eventId": "e-1"}', sent["MessageId"], TRACE_HEADER)]
    assert queue_depth(sqs, url) == 0
    assert not consumer.busy.is_set()
    assert consumer.poll_once() == 0  # an empty long poll


def test_a_message_whose_handling_failed_comes_back_after_the_visibility_timeout(
    callback_queue: tuple[Any, str],
) -> None:
    sqs, url = callback_queue
    sqs.send_message(QueueUrl=url, MessageBody='{"jobId": "j-2", "eventId": "e-2"}')
    handler = RecordingHandler(failures=1)
    consumer = CallbackConsumer(sqs, url, handler, wait_time_s=1)

    assert consumer.poll_once() == 0  # failed: left on the queue, invisible for now
    assert queue_depth(sqs, url) == 1
    deleted = 0
    for _ in range(5):  # the 1 s visibility timeout passes within a few 1 s long polls
        deleted += consumer.poll_once()
        if deleted:
            break
    assert deleted == 1
    assert handler.calls[0][1] == handler.calls[1][1]  # the same message, handled again
    assert queue_depth(sqs, url) == 0


def test_run_turns_its_loop_through_receive_errors_until_stopped(callback_queue: tuple[Any, str]) -> None:
    sqs, url = callback_queue
    consumer = CallbackConsumer(sqs, url + "-missing", RecordingHandler(), wait_time_s=1)
    stopping = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stopping,), daemon=True)
    thread.start()
    try:
        for _ in range(50):
            if consumer.turns >= 2:
                break
            stopping.wait(0.1)
        assert consumer.turns >= 2  # a receive that fails still turns the loop (logged, paused, retried)
    finally:
        stopping.set()
        thread.join(5)
    assert not thread.is_alive()


def test_liveness_is_touched_only_once_every_consumer_turned(callback_queue: tuple[Any, str], tmp_path: Path) -> None:
    sqs, url = callback_queue
    first, second = (CallbackConsumer(sqs, url, RecordingHandler()) for _ in range(2))
    path = tmp_path / "alive"
    liveness = AllTurned([first, second], Liveness(path, min_interval_s=0))

    assert liveness.check()  # at start
    os.utime(path, (0, 0))
    first.turns += 1
    assert not liveness.check()  # the second thread has not turned: it may be wedged
    assert path.stat().st_mtime == 0
    second.turns += 1
    assert liveness.check()
    assert path.stat().st_mtime > 0
