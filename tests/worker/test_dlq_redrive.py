"""Issue 11 end to end on moto's server: a job whose message reached the dead-letter queue through receives that
made no attempt (a worker killed with the message prefetched, three times) is redriven by the DLQ handler, through
the local poller shaped as Lambda's event source mapping, and then runs once."""

from __future__ import annotations

from pathlib import Path

from runtime.adapters.priority_queue import sqs_priority_queue
from runtime.dlq_handler import DeadLetterHandler, handle_event
from runtime.domain.job import JobStatus
from runtime.domain.schedule import DelayWindow
from runtime.local.dlq_poller import DeadLetterPoller
from runtime.worker.runner import Worker
from tests.worker.conftest import make_worker_env
from tests.worker.plugin_jobs import read_runs

# The stacks' maxReceiveCount (the worker's max_attempts): three receives, then the DLQ.
MAX_RECEIVE_COUNT = 3


def test_a_job_dead_lettered_by_receives_without_attempts_is_redriven_and_succeeds(
    moto_server: str, tmp_path: Path
) -> None:
    env = make_worker_env(moto_server, tmp_path, max_receive_count=MAX_RECEIVE_COUNT)
    assert env.settings.max_attempts == MAX_RECEIVE_COUNT
    run_log = str(tmp_path / "runs.log")
    job = env.submit("test_slow", {"run_log": run_log})
    # A killed worker: each receive takes the message and never claims, deletes or releases it (visibility 0 stands
    # in for the timeout running out); the receive after the third moves it to the DLQ.
    for _ in range(MAX_RECEIVE_COUNT):
        assert len(env.queue.receive(max_messages=10, wait_s=0, visibility_timeout_s=0)) == 1
    assert env.queue.receive(max_messages=10, wait_s=0, visibility_timeout_s=0) == []
    dlq_url = env.settings.dead_letter_queue_url
    assert env.queue_depth(dlq_url) == 1 and env.queue_depth() == 0
    assert env.job(job.job_id).status is JobStatus.PENDING

    # The DLQ handler as the Lambda composes it: the workers' queues, attempt budget and delay window.
    dead_letters = DeadLetterHandler(
        env.store,
        sqs_priority_queue(env.sqs, env.settings.priority_queue_urls),
        max_attempts=env.settings.max_attempts,
        delay_window=DelayWindow(env.settings.schedule_delay_window_s),
    )
    poller = DeadLetterPoller(
        env.sqs,
        dlq_url,
        lambda event, context: handle_event(event, context, dead_letters=dead_letters),
        region="us-east-1",
        wait_time_s=0,
    )
    assert poller.poll_once() == 1
    redriven = env.job(job.job_id)
    assert (redriven.status, redriven.attempts, redriven.redrives, redriven.error) == (JobStatus.PENDING, 0, 1, None)
    assert env.queue_depth(dlq_url) == 0 and env.queue_depth() == 1

    worker = Worker(store=env.store, queue=env.queue, objects=env.objects, settings=env.settings, republish=False)
    worker.start()
    try:
        final = env.wait_terminal(job.job_id)
    finally:
        worker.stop(5.0)
    assert (final.status, final.attempts) == (JobStatus.SUCCEEDED, 1)
    assert [event for event, _, _ in read_runs(run_log)] == ["start", "done"]
