"""The worker's receive loop with fakes: a full batch of ten is asked for whenever a slot is free, the
prefetch stays bounded and heartbeat-tracked, and stop() hands back what no job thread started."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from runtime.domain.job import JobStatus
from runtime.domain.ports import ReceivedMessage
from runtime.job_types.registry import JobContext
from tests.unit.fakes import FakeQueue, InMemoryJobStore, make_job, received
from tests.unit.worker_support import Params, started_gate_worker

CONCURRENCY = 2


class PollingQueue(FakeQueue):
    """Records each receive's MaxNumberOfMessages; an empty inbox holds the poll like a long poll would."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []
        self.polled = threading.Condition()
        self.stop_polling = threading.Event()

    def receive(self, *, max_messages: int, wait_s: int, visibility_timeout_s: int) -> Sequence[ReceivedMessage]:
        with self.polled:
            self.asked.append(max_messages)
            self.polled.notify_all()
        taken = super().receive(max_messages=max_messages, wait_s=wait_s, visibility_timeout_s=visibility_timeout_s)
        if not taken:
            self.stop_polling.wait(5)
        return taken


def test_a_full_batch_is_asked_for_and_the_prefetch_is_bounded_and_given_back_at_stop() -> None:
    gate = threading.Event()
    started = threading.Semaphore(0)

    def handler(params: Params, context: JobContext) -> dict[str, Any]:
        started.release()
        gate.wait(10)
        return {}

    store, queue = InMemoryJobStore(), PollingQueue()
    for index in range(25):
        store.create(make_job(f"job-{index}", job_type="gate"))
        queue.inbox.append(received(f"job-{index}", handle=f"rh-{index}"))
    worker = started_gate_worker(store, queue, handler, concurrency=CONCURRENCY, receive_wait_s=1)
    for _ in range(CONCURRENCY):
        assert started.acquire(timeout=10)
    # Both slots are busy and eight messages wait: no second receive until a slot frees.
    assert queue.asked == [10]
    assert worker.in_flight == 10
    assert len(worker._heartbeat.receipt_handles()) == 10
    queue.stop_polling.set()
    worker.stop(deadline_s=0.01)
    gate.set()
    # Eight never started, two past the deadline: each republished as a fresh message, then deleted.
    assert sorted(message.job_id for message in queue.sent) == sorted(f"job-{index}" for index in range(10))
    assert sorted(queue.deleted) == sorted(f"rh-{index}" for index in range(10))
    assert queue.batch_visibility == [] or all(timeout != 0 for _, timeout in queue.batch_visibility)
    # The two claimed jobs were handed back: no attempt counted.
    assert [store.jobs[f"job-{index}"].attempts for index in range(10)] == [0] * 10
    finished = threading.Event()
    for _ in range(1000):  # the two late jobs finish once the gate opens; bounded wait, not a speed target
        if worker.in_flight == 0:
            finished.set()
            break
        threading.Event().wait(0.01)
    assert finished.is_set(), f"in_flight stayed at {worker.in_flight}"
    # Their late ends recorded nothing: the jobs wait, handed back, for whoever takes the fresh messages.
    assert {store.jobs[f"job-{index}"].status for index in range(2)} == {JobStatus.PROCESSING}
    assert [store.jobs[f"job-{index}"].attempts for index in range(2)] == [0, 0]
