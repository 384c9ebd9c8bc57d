"""The API's batched sender with a fake SQS client: concurrent sends share SendMessageBatch calls of at most
ten, a lone message goes out after the linger, and a failure reaches exactly the senders concerned."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from runtime.adapters.sqs_batch_sender import BatchingSqsJobQueue
from runtime.adapters.sqs_queue import SqsJobQueue
from runtime.domain.ports import JobMessage, QueueUnavailable

QUEUE_URL = "http://127.0.0.1:1/000000000000/jobs"


class FakeSqsClient:
    """Records SendMessageBatch calls; refuses entries whose job id is in `refuse`, fails whole calls while
    `down`, and holds each call until `gate` is set."""

    def __init__(self, *, refuse: frozenset[str] = frozenset(), down: bool = False) -> None:
        self.refuse = refuse
        self.down = down
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[list[str]] = []
        self.single: list[str] = []
        self._lock = threading.Lock()

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.gate.wait()
        if self.down:
            raise EndpointConnectionError(endpoint_url=QueueUrl)
        job_ids = [json.loads(entry["MessageBody"])["jobId"] for entry in Entries]
        with self._lock:
            self.batches.append(job_ids)
        refused = {entry["Id"] for entry, job_id in zip(Entries, job_ids, strict=True) if job_id in self.refuse}
        return {
            "Successful": [{"Id": entry["Id"]} for entry in Entries if entry["Id"] not in refused],
            "Failed": [{"Id": id_, "Code": "InternalError", "SenderFault": False} for id_ in sorted(refused)],
        }

    def send_message(self, *, QueueUrl: str, MessageBody: str) -> dict[str, Any]:
        self.single.append(json.loads(MessageBody)["jobId"])
        return {"MessageId": "m"}


def sender(client: FakeSqsClient, *, linger_s: float = 3600, wait_s: float = 10.0) -> BatchingSqsJobQueue:
    return BatchingSqsJobQueue(SqsJobQueue(client, QUEUE_URL), linger_s=linger_s, wait_s=wait_s)


def send_all(queue: BatchingSqsJobQueue, job_ids: list[str]) -> dict[str, Exception | None]:
    """Sends each job id from its own thread (all at once) and gives what each send raised."""
    barrier = threading.Barrier(len(job_ids))

    def send(job_id: str) -> Exception | None:
        barrier.wait()
        try:
            queue.send(JobMessage(job_id=job_id, trace_id="t"))
        except Exception as exc:  # noqa: BLE001 - the test looks at what each sender saw
            return exc
        return None

    with ThreadPoolExecutor(max_workers=len(job_ids)) as pool:
        return dict(zip(job_ids, pool.map(send, job_ids), strict=True))


def test_twenty_concurrent_sends_go_out_as_two_full_batches() -> None:
    client = FakeSqsClient()
    queue = sender(client)  # the linger never ends: only full batches go out
    job_ids = [f"job-{index}" for index in range(20)]
    outcomes = send_all(queue, job_ids)
    assert outcomes == dict.fromkeys(job_ids)
    assert [len(batch) for batch in client.batches] == [10, 10]
    assert sorted(job_id for batch in client.batches for job_id in batch) == sorted(job_ids)
    queue.close()


def test_a_lone_message_goes_out_after_the_linger() -> None:
    client = FakeSqsClient()
    queue = sender(client, linger_s=0.005)
    queue.send(JobMessage(job_id="job-1", trace_id="t"))
    assert client.batches == [["job-1"]]
    queue.close()


def test_refused_entries_raise_only_in_their_senders() -> None:
    client = FakeSqsClient(refuse=frozenset({"job-3", "job-7"}))
    queue = sender(client)
    job_ids = [f"job-{index}" for index in range(10)]
    outcomes = send_all(queue, job_ids)
    assert {job_id for job_id, exc in outcomes.items() if isinstance(exc, QueueUnavailable)} == {"job-3", "job-7"}
    assert all(exc is None for job_id, exc in outcomes.items() if job_id not in {"job-3", "job-7"})
    assert [len(batch) for batch in client.batches] == [10]
    queue.close()


def test_a_failed_call_raises_queue_unavailable_in_every_sender_of_the_batch() -> None:
    client = FakeSqsClient(down=True)
    queue = sender(client)
    outcomes = send_all(queue, [f"job-{index}" for index in range(10)])
    assert all(isinstance(exc, QueueUnavailable) for exc in outcomes.values())
    queue.close()


def test_a_send_not_answered_in_time_raises_queue_unavailable() -> None:
    client = FakeSqsClient()
    client.gate.clear()  # the call hangs until the test lets it go
    queue = sender(client, linger_s=0.001, wait_s=0.05)
    with pytest.raises(QueueUnavailable, match=r"not answered within 0\.05 s"):
        queue.send(JobMessage(job_id="job-1", trace_id="t"))
    client.gate.set()
    queue.close()
    assert client.batches == [["job-1"]]  # it still went out: a duplicate at worst, never a loss


def test_close_sends_what_waits_and_later_sends_go_out_alone() -> None:
    client = FakeSqsClient()
    queue = sender(client)
    waiting = threading.Thread(target=queue.send, args=(JobMessage(job_id="job-1", trace_id="t"),))
    waiting.start()
    for _ in range(10_000):  # bounded: a send that never queues fails the test instead of hanging it
        if queue._batches.pending_count():
            break
        threading.Event().wait(0.001)
    assert queue._batches.pending_count() == 1, "the send never queued"
    queue.close()
    waiting.join()
    assert client.batches == [["job-1"]]
    queue.send(JobMessage(job_id="job-2", trace_id="t"))
    assert client.single == ["job-2"]
