"""Scheduled jobs with the real worker against moto over HTTP: a job never starts before its runAt, a message that
arrives early is put back as a fresh delayed one (no attempt, no receive spent), a job due beyond the delay window
is released by the republisher (the window shortened to a few seconds here), a job canceled while it waits never
runs, and a scheduled job whose message was lost is republished within the documented bound after its runAt."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime.adapters.sqs_queue import SqsJobQueue
from runtime.domain.job import Job, JobStatus, Priority
from runtime.domain.ports import JobMessage, ReceivedMessage, UtcClock
from runtime.domain.schedule import DelayWindow, ScheduleRequest
from runtime.domain.submit import JobService, SubmitRequest, SubmitResult
from runtime.settings import Settings
from runtime.worker.runner import Worker
from tests.adapters.resources import dead_client
from tests.worker.conftest import TENANT, WorkerEnv
from tests.worker.plugin_jobs import read_runs

# Moto over HTTP on a shared 2-core machine answers slowly at times: what the bounds below allow on top.
MARGIN_S = 3.0
# The delay window these tests shorten to (the real one is SQS's 900 s): above the republish bound (1 s + 1 s).
SHORT_WINDOW_S = 3


class RecordingQueue:
    """The worker's queue, recording every message it receives and every message sent through it."""

    def __init__(self, queue: SqsJobQueue) -> None:
        self._queue = queue
        self.received: list[ReceivedMessage] = []
        self.sent: list[JobMessage] = []

    def send(self, message: JobMessage) -> None:
        self._queue.send(message)
        self.sent.append(message)

    def receive(self, *, max_messages: int, wait_s: int, visibility_timeout_s: int) -> Sequence[ReceivedMessage]:
        received = self._queue.receive(
            max_messages=max_messages, wait_s=wait_s, visibility_timeout_s=visibility_timeout_s
        )
        self.received.extend(received)
        return received

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


def service(env: WorkerEnv, *, window_s: int, queue: Any = None) -> JobService:
    return JobService(
        env.store,
        queue or env.queue,
        UtcClock(),
        retention_s=86_400,
        idempotency_ttl_s=86_400,
        submit_in_flight_s=10.0,
        retry_republish_after_s=env.settings.retry_republish_after_s,
        delay_window=DelayWindow(window_s),
    )


def submit(env: WorkerEnv, schedule: ScheduleRequest, *, window_s: int = 900, queue: Any = None) -> SubmitResult:
    run_log = str(env.tmp / f"{uuid.uuid4().hex}.log")
    return service(env, window_s=window_s, queue=queue).submit(
        SubmitRequest(
            job_type="test_slow",
            priority=Priority.NORMAL,
            params={"run_log": run_log},
            metadata={},
            trace_id=uuid.uuid4().hex,
            tenant=TENANT,
            schedule=schedule,
        )
    )


def runs(job: Job) -> list[str]:
    return [event for event, _, _ in read_runs(job.params["run_log"])]


@contextmanager
def running(env: WorkerEnv, settings: Settings, queue: Any, *, republish: bool) -> Iterator[Worker]:
    worker = Worker(store=env.store, queue=queue, objects=env.objects, settings=settings, republish=republish)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(5.0)


def started_at(job: Job) -> datetime:
    return job.transitions[JobStatus.PROCESSING.value]


def test_a_scheduled_job_does_not_start_before_its_run_at(worker_env: WorkerEnv) -> None:
    env = worker_env
    queue = RecordingQueue(env.queue)
    with running(env, env.settings, queue, republish=False):
        job = submit(env, ScheduleRequest(delay_s=3)).job
        assert job.run_at is not None and job.status is JobStatus.PENDING
        done = env.wait_terminal(job.job_id)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1 and runs(done) == ["start", "done"]
    assert job.run_at <= started_at(done) <= job.run_at + timedelta(seconds=MARGIN_S)
    assert all(message.receive_count == 1 for message in queue.received)


def test_an_early_message_is_put_back_fresh_without_spending_an_attempt_or_a_receive(worker_env: WorkerEnv) -> None:
    env = worker_env
    queue = RecordingQueue(env.queue)
    # As if a skewed clock or an early republish sent it now: a message for a job due in 3 s.
    job = submit(env, ScheduleRequest(delay_s=3), queue=SqsJobQueue(dead_client("sqs"), "none")).job
    assert job.run_at is not None
    env.queue.send(JobMessage.for_job(job))
    with running(env, env.settings, queue, republish=False):
        done = env.wait_terminal(job.job_id)
        env.wait_for("the queue to drain", lambda: env.queue_depth() == 0)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1 and runs(done) == ["start", "done"]
    assert started_at(done) >= job.run_at
    received = [message for message in queue.received if message.message and message.message.job_id == job.job_id]
    assert len(received) == 2 and len({message.message_id for message in received}) == 2
    assert [message.receive_count for message in received] == [1, 1]  # the fresh message starts over
    (put_back,) = queue.sent
    assert put_back.job_id == job.job_id and 1 <= put_back.delay_s <= 3


def test_a_delay_beyond_the_window_goes_through_the_republisher(worker_env: WorkerEnv) -> None:
    env = worker_env
    settings = env.settings.model_copy(update={"schedule_delay_window_s": SHORT_WINDOW_S})
    queue = RecordingQueue(env.queue)
    job = submit(env, ScheduleRequest(delay_s=SHORT_WINDOW_S + 4), window_s=SHORT_WINDOW_S).job
    assert job.run_at is not None
    assert env.queue_depth() == 0 and queue_delayed(env) == 0  # held back: nothing sent at submit
    assert job.pending_since == job.run_at - timedelta(seconds=SHORT_WINDOW_S)
    with running(env, settings, queue, republish=True):
        done = env.wait_terminal(job.job_id)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1 and runs(done) == ["start", "done"]
    assert job.run_at <= started_at(done) <= job.run_at + timedelta(seconds=MARGIN_S)
    released = [message for message in queue.sent if message.job_id == job.job_id]
    # Released inside the window, before its runAt, with the delay left (whole seconds, rounded up).
    assert released and 1 <= released[0].delay_s <= SHORT_WINDOW_S


def test_a_job_canceled_while_it_waits_never_runs(worker_env: WorkerEnv) -> None:
    env = worker_env
    settings = env.settings.model_copy(update={"schedule_delay_window_s": SHORT_WINDOW_S})
    queue = RecordingQueue(env.queue)
    delayed = submit(env, ScheduleRequest(delay_s=2), window_s=SHORT_WINDOW_S).job  # its message is in the queue
    held = submit(env, ScheduleRequest(delay_s=SHORT_WINDOW_S + 2), window_s=SHORT_WINDOW_S).job  # no message yet
    for job in (delayed, held):
        assert service(env, window_s=SHORT_WINDOW_S).cancel(job.job_id, tenant=TENANT).done
    last_run_at = max(job.run_at for job in (delayed, held) if job.run_at is not None)
    with running(env, settings, queue, republish=True):
        env.wait_for("the delayed message to be dropped", lambda: any(m.message for m in queue.received))
        env.wait_for("the queue to drain", lambda: env.queue_depth() == 0 and queue_delayed(env) == 0)
        # Past the held job's runAt and a republish round: the republisher never publishes a canceled job.
        env.wait_for("the held job's runAt to pass", lambda: datetime.now(UTC) > last_run_at + timedelta(seconds=2))
    assert queue.sent == []
    for job in (delayed, held):
        after = env.job(job.job_id)
        assert after.status is JobStatus.CANCELED and after.attempts == 0 and runs(after) == []
        assert JobStatus.PROCESSING.value not in after.transitions


def test_a_scheduled_job_whose_message_was_lost_is_republished_within_the_bound_after_run_at(
    worker_env: WorkerEnv,
) -> None:
    env = worker_env
    result = submit(env, ScheduleRequest(delay_s=2), queue=SqsJobQueue(dead_client("sqs"), "none"))
    job = result.job
    assert not result.published and job.run_at is not None and env.queue_depth() == 0
    with running(env, env.settings, env.queue, republish=True):
        done = env.wait_terminal(job.job_id)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1 and runs(done) == ["start", "done"]
    bound = timedelta(seconds=env.settings.republish_bound_s + MARGIN_S)
    assert job.run_at <= started_at(done) <= job.run_at + bound


def queue_delayed(env: WorkerEnv) -> int:
    attributes = env.sqs.get_queue_attributes(
        QueueUrl=env.settings.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])
