"""A release with fakes: the order of its steps (hand the attempt back, publish a fresh copy, delete the old one),
what happens when a step fails, and the hold that keeps a released attempt's late writes out."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from runtime.domain.hold import Hold
from runtime.domain.job import JobStatus
from runtime.domain.ports import JobMessage
from runtime.domain.processing import Action, Outcome
from runtime.job_types.registry import JobContext
from runtime.worker.runner import Worker
from tests.unit.fakes import FakeClock, FakeQueue, InMemoryJobStore, make_job, received
from tests.unit.worker_support import Params, echo_processor, started_gate_worker

TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793"


class RecordingQueue(FakeQueue):
    """Notes every step in order in `steps` (shared with the store's)."""

    def __init__(self, steps: list[str]) -> None:
        super().__init__()
        self.steps = steps

    def send_many(
        self, messages: Sequence[JobMessage], *, may_start: Callable[[], bool] | None = None
    ) -> frozenset[int]:
        self.steps.append("send")
        return super().send_many(messages, may_start=may_start)

    def delete_batch(self, receipt_handles: Sequence[str]) -> None:
        self.steps.append("delete")
        super().delete_batch(receipt_handles)

    def change_visibility_batch(self, receipt_handles: Sequence[str], timeout_s: int) -> None:
        self.steps.append(f"visibility {timeout_s}")
        super().change_visibility_batch(receipt_handles, timeout_s)


class RecordingStore(InMemoryJobStore):
    def __init__(self, steps: list[str]) -> None:
        super().__init__()
        self.steps = steps

    def release(self, job_id: str, *, attempt: int, now: Any) -> bool:
        self.steps.append("release")
        return super().release(job_id, attempt=attempt, now=now)


def held_worker(store: InMemoryJobStore, queue: FakeQueue, gate: threading.Event) -> tuple[Worker, threading.Event]:
    """A worker with one job running (held until `gate`); returns it and the event its handler set on starting."""
    started = threading.Event()

    def handler(params: Params, ctx: JobContext) -> dict[str, Any]:
        started.set()
        gate.wait(10)
        return {"late": True}

    store.create(make_job("job-1", job_type="gate"))
    queue.inbox.append(dataclasses.replace(received("job-1", handle="rh-1"), trace_header=TRACE_HEADER))
    worker = started_gate_worker(store, queue, handler, concurrency=1, receive_wait_s=0)
    assert started.wait(10)
    return worker, started


def let_finish(worker: Worker, gate: threading.Event) -> None:
    """Opens the gate and waits (bounded) for the abandoned job thread to end, so it logs within its test."""
    gate.set()
    for _ in range(1000):
        if worker.in_flight == 0:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"in_flight stayed at {worker.in_flight}")


def test_a_release_hands_the_attempt_back_then_publishes_a_fresh_copy_then_deletes_the_old_one() -> None:
    steps: list[str] = []
    store, queue, gate = RecordingStore(steps), RecordingQueue(steps), threading.Event()
    worker, _ = held_worker(store, queue, gate)
    assert worker.stop(deadline_s=0.01) is False
    let_finish(worker, gate)
    assert steps == ["release", "send", "delete"]
    assert queue.sent == [JobMessage(job_id="job-1", trace_id="trace-job-1", trace_header=TRACE_HEADER)]
    assert queue.deleted == ["rh-1"]
    job = store.jobs["job-1"]
    assert job.status is JobStatus.PROCESSING and job.attempts == 0 and job.lease_expires_at is not None


def test_a_copy_that_could_not_be_published_goes_back_the_old_way_and_is_not_deleted() -> None:
    steps: list[str] = []
    store, queue, gate = RecordingStore(steps), RecordingQueue(steps), threading.Event()
    worker, _ = held_worker(store, queue, gate)
    queue.fail_send = True
    worker.stop(deadline_s=0.01)
    let_finish(worker, gate)
    assert steps == ["release", "send", "visibility 0"] and queue.deleted == []
    assert store.jobs["job-1"].attempts == 0  # handed back all the same: the old message finds it free


def test_a_store_outage_during_the_release_still_republishes(capsys: pytest.CaptureFixture[str]) -> None:
    steps: list[str] = []
    store, queue, gate = RecordingStore(steps), RecordingQueue(steps), threading.Event()
    worker, _ = held_worker(store, queue, gate)
    store.unavailable = True
    worker.stop(deadline_s=0.01)
    let_finish(worker, gate)
    assert steps == ["release", "send", "delete"]
    assert '"release_failed"' in capsys.readouterr().out


def test_an_attempt_released_while_its_handler_ran_records_nothing_even_if_claimed_again_under_its_number() -> None:
    store = InMemoryJobStore()
    store.create(make_job())
    hold = Hold()

    def handler(params: Params, ctx: JobContext) -> dict[str, Any]:
        # The worker releases meanwhile, and another worker claims the job again: attempt 1 once more.
        with hold.releasing() as attempt:
            assert attempt == 1 and store.release("job-1", attempt=1, now=FakeClock().now())
        assert store.claim("job-1", now=FakeClock().now(), lease_until=FakeClock().now()).claimed
        ctx.report_progress(0.5)
        return {"stale": True}

    decision = echo_processor(store, handler).process(received(), hold=hold)
    assert decision.outcome is Outcome.RELEASED and decision.action is Action.KEEP
    job = store.jobs["job-1"]
    assert job.status is JobStatus.PROCESSING and job.attempts == 1 and job.result is None and job.progress is None


def test_a_message_released_before_its_claim_is_not_claimed() -> None:
    store = InMemoryJobStore()
    store.create(make_job())
    hold = Hold()
    with hold.releasing() as attempt:
        assert attempt is None
    decision = echo_processor(store, lambda params, ctx: {}).process(received(), hold=hold)
    assert decision.outcome is Outcome.RELEASED and store.jobs["job-1"].status is JobStatus.PENDING
    assert "claim" not in store.calls
