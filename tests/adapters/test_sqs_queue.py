"""SqsJobQueue against the moto server over HTTP."""

from __future__ import annotations

import json
import threading

import pytest

from runtime.adapters.sqs_batch_sender import BatchingSqsJobQueue
from runtime.adapters.sqs_queue import (
    ENTRY_OVERHEAD_BYTES,
    SQS_BATCH_BYTES,
    OutgoingMessage,
    SqsJobQueue,
    decode,
    encode,
    size_bounded_batches,
)
from runtime.domain.ports import JobMessage, QueueUnavailable
from runtime.observability import aws_calls
from tests.adapters.resources import counted_client, dead_client, queue_depth, raw_client, unique


@pytest.fixture
def queue_url(moto_server: str) -> str:
    return str(raw_client("sqs", moto_server).create_queue(QueueName=unique("adapter-q"))["QueueUrl"])


@pytest.fixture
def queue(moto_server: str, queue_url: str) -> SqsJobQueue:
    return SqsJobQueue(counted_client("sqs", moto_server), queue_url)


def test_send_and_receive(queue: SqsJobQueue) -> None:
    queue.send(JobMessage(job_id="job-1", trace_id="trace-1"))
    received = queue.receive(max_messages=10, wait_s=1, visibility_timeout_s=30)
    assert len(received) == 1
    message = received[0]
    assert message.message == JobMessage(job_id="job-1", trace_id="trace-1")
    assert message.receive_count == 1 and message.sent_at.year >= 2025 and message.trace_header is None
    assert message.raw_body == '{"jobId":"job-1","traceId":"trace-1"}'


def test_trace_header_travels_as_system_attribute(moto_server: str, queue_url: str) -> None:
    header = "Root=1-67c2f6c0-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"
    queue = SqsJobQueue(counted_client("sqs", moto_server), queue_url, trace_header=lambda: header)
    queue.send(JobMessage(job_id="job-2", trace_id="t"))
    (message,) = queue.receive(max_messages=1, wait_s=1, visibility_timeout_s=30)
    assert message.trace_header == header


def test_a_message_carrying_its_own_trace_header_is_sent_with_it(moto_server: str, queue_url: str) -> None:
    # A worker's release republishes a message with the header it arrived with, not the releasing thread's.
    kept = "Root=1-67c2f6c0-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"
    current = "Root=1-67c2f6c0-ffffffffffffffffffffffff;Parent=0000000000000001;Sampled=1"
    queue = SqsJobQueue(counted_client("sqs", moto_server), queue_url, trace_header=lambda: current)
    message = JobMessage(job_id="job-3", trace_id="t", trace_header=kept)
    queue.send(message)
    (received,) = queue.receive(max_messages=1, wait_s=1, visibility_timeout_s=30)
    assert received.trace_header == kept
    # SendMessageBatch entries carry it the same way (moto drops batch entries' system attributes, so this is
    # checked on the entry as built rather than on the received message).
    assert queue.outgoing(message).trace_header == kept
    assert queue.outgoing(JobMessage(job_id="job-4", trace_id="t")).trace_header == current


def test_poison_body_is_received_without_a_message(moto_server: str, queue_url: str, queue: SqsJobQueue) -> None:
    raw_client("sqs", moto_server).send_message(QueueUrl=queue_url, MessageBody="not json")
    (message,) = queue.receive(max_messages=1, wait_s=1, visibility_timeout_s=30)
    assert message.message is None and message.raw_body == "not json"


@pytest.mark.parametrize("body", ["[]", '{"traceId":"t"}', '{"jobId":""}', '{"jobId":1}', "{"])
def test_decode_refuses_non_job_bodies(body: str) -> None:
    assert decode(body) is None


def test_delete_batch_over_ten(moto_server: str, queue_url: str, queue: SqsJobQueue) -> None:
    for i in range(13):
        queue.send(JobMessage(job_id=f"job-{i}", trace_id="t"))
    handles: list[str] = []
    while len(handles) < 13:
        received = queue.receive(max_messages=10, wait_s=1, visibility_timeout_s=60)
        assert received, "messages went missing"
        handles.extend(message.receipt_handle for message in received)
    queue.delete_batch(handles)
    assert queue_depth(raw_client("sqs", moto_server), queue_url) == 0
    queue.delete_batch(handles)  # already gone: nothing to do, no error


def test_change_visibility_makes_a_message_visible_again(queue: SqsJobQueue) -> None:
    queue.send(JobMessage(job_id="job-v", trace_id="t"))
    (first,) = queue.receive(max_messages=1, wait_s=1, visibility_timeout_s=60)
    assert queue.receive(max_messages=1, wait_s=0, visibility_timeout_s=60) == []
    queue.change_visibility(first.receipt_handle, 0)
    (again,) = queue.receive(max_messages=1, wait_s=1, visibility_timeout_s=60)
    assert again.message == first.message and again.receive_count == 2
    queue.change_visibility_batch([again.receipt_handle], 0)
    (third,) = queue.receive(max_messages=1, wait_s=1, visibility_timeout_s=60)
    assert third.receive_count == 3


def test_ping_and_unreachable(queue: SqsJobQueue, queue_url: str) -> None:
    queue.ping()
    dead = SqsJobQueue(dead_client("sqs"), queue_url)
    with pytest.raises(QueueUnavailable):
        dead.send(JobMessage(job_id="x", trace_id="t"))
    with pytest.raises(QueueUnavailable):
        dead.ping()


def test_send_many_goes_out_ten_to_a_call_and_reports_what_did_not(
    moto_server: str, queue_url: str, queue: SqsJobQueue
) -> None:
    messages = [JobMessage(job_id=f"many-{n}", trace_id="t") for n in range(25)]
    before = aws_calls.snapshot().get("other", {}).get("sqs.SendMessageBatch", 0)
    assert queue.send_many(messages) == frozenset()
    assert aws_calls.snapshot()["other"]["sqs.SendMessageBatch"] - before == 3  # 10 + 10 + 5
    assert queue_depth(raw_client("sqs", moto_server), queue_url) == 25
    assert queue.send_many([]) == frozenset()
    assert SqsJobQueue(dead_client("sqs"), queue_url).send_many(messages[:12]) == frozenset(range(12))


def test_send_many_makes_no_call_its_caller_holds_back(moto_server: str, queue_url: str, queue: SqsJobQueue) -> None:
    messages = [JobMessage(job_id=f"held-{n}", trace_id="t") for n in range(25)]
    calls = iter([True, True, False])
    before = aws_calls.snapshot().get("other", {}).get("sqs.SendMessageBatch", 0)
    # Two calls of ten go out, the third (the last five) is not made and is reported unsent.
    assert queue.send_many(messages, may_start=lambda: next(calls)) == frozenset(range(20, 25))
    assert aws_calls.snapshot()["other"]["sqs.SendMessageBatch"] - before == 2
    assert queue_depth(raw_client("sqs", moto_server), queue_url) == 20


def test_a_submits_message_round_trips_its_mark_and_only_a_literal_true_marks_one(queue: SqsJobQueue) -> None:
    message = JobMessage(job_id="job-c", trace_id="t", from_submit=True)
    assert encode(message) == '{"jobId":"job-c","traceId":"t","submit":true}'
    assert encode(JobMessage(job_id="job-c", trace_id="t")) == '{"jobId":"job-c","traceId":"t"}'
    queue.send(message)
    (received,) = queue.receive(max_messages=10, wait_s=1, visibility_timeout_s=30)
    assert received.message == message
    for mark in ("true", 1, None, {}):
        decoded = decode(json.dumps({"jobId": "j", "traceId": "t", "submit": mark}))
        assert decoded == JobMessage(job_id="j", trace_id="t")  # claimed first


def _large(name: str) -> JobMessage:
    # Bodies are small (ids only); a 60 KB id stands in for whatever may make one large, so batches must be cut.
    return JobMessage(job_id=f"{name}-" + "x" * 60_000, trace_id="t")


def test_batches_are_cut_by_size_as_well_as_by_count() -> None:
    def outgoing(size: int) -> OutgoingMessage:
        return OutgoingMessage(body="x" * size, trace_header=None)

    assert size_bounded_batches([outgoing(10)] * 25) == [range(0, 10), range(10, 20), range(20, 25)]
    large = [outgoing(65_536)] * 10
    batches = size_bounded_batches(large)
    assert [len(batch) for batch in batches] == [3, 3, 3, 1]
    for batch in batches:
        assert sum(len(large[index].body) + ENTRY_OVERHEAD_BYTES for index in batch) <= SQS_BATCH_BYTES
    assert size_bounded_batches([]) == []


def test_send_many_of_large_messages_stays_within_the_batch_size_limit(
    moto_server: str, queue_url: str, queue: SqsJobQueue
) -> None:
    # Ten bodies of about 60 KB: one SendMessageBatch of all of them (600 KB) would be refused by SQS.
    messages = [_large(f"large-{n}") for n in range(10)]
    before = aws_calls.snapshot().get("other", {}).get("sqs.SendMessageBatch", 0)
    assert queue.send_many(messages) == frozenset()
    assert aws_calls.snapshot()["other"]["sqs.SendMessageBatch"] - before == 3  # 4 + 4 + 2 (about 61 KB each)
    assert queue_depth(raw_client("sqs", moto_server), queue_url) == 10


def test_the_coalescing_sender_splits_a_batch_of_large_messages(
    moto_server: str, queue_url: str, queue: SqsJobQueue
) -> None:
    sender = BatchingSqsJobQueue(queue, linger_s=0.5)
    messages = [_large(f"coalesced-{n}") for n in range(6)]
    errors: list[BaseException] = []

    def send(message: JobMessage) -> None:
        try:
            sender.send(message)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(message,)) for message in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    sender.close()
    assert errors == []
    assert queue_depth(raw_client("sqs", moto_server), queue_url) == 6
