"""Callbacks end to end on the moto server: the worker (and a cancel) end jobs, the callback queue carries their
events, the callback handler POSTs them to a listener on 127.0.0.1 that checks each signature; retries, a hanging
endpoint, a DNS answer that changes, and the outbox. Each test runs with both consumers of the callback queue: the
Lambda handler polled as its event source mapping would, and the long-running consumer (Kubernetes, local)."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runtime.adapters.dynamodb.access_store import DynamoDbAccessStore
from runtime.adapters.sqs_callback_queue import SqsCallbackQueue
from runtime.admin.access import AccessAdmin
from runtime.aws_clients import build_client
from runtime.callback_handler import CallbackRecords, handle_event
from runtime.callbacks import http_post
from runtime.callbacks.addresses import CallbackUrlPolicy, Resolver, system_resolver
from runtime.callbacks.consumer import CallbackConsumer
from runtime.callbacks.delivery import CallbackDeliverer
from runtime.callbacks.outbox import CallbackOutbox
from runtime.domain.callbacks import Callback, CallbackState, RetrySchedule
from runtime.domain.job import Job, JobStatus
from runtime.domain.ports import UtcClock
from runtime.domain.submit import JobService
from runtime.local.dlq_poller import DeadLetterPoller
from runtime.worker.runner import Worker
from tests.callback_listener import Listener, listening
from tests.worker.conftest import TENANT, WorkerEnv

# Short retries for tests: 1 s between attempts (SQS delays are whole seconds).
QUICK_RETRIES = RetrySchedule(base_s=1, max_s=1, window_s=60)


@dataclass
class CallbackRig:
    env: WorkerEnv
    queue_url: str
    queue: SqsCallbackQueue
    outbox: CallbackOutbox
    secret: str
    listener: Listener
    via: str  # "lambda" or "consumer": what consumes the callback queue

    def job(self, job_id: str) -> Job:
        return self.env.job(job_id)

    def create(self, job_type: str, params: dict[str, Any], url: str, *, send: bool = True) -> Job:
        """A PENDING job of TENANT with a callback to `url`, as the API stores it."""
        return self.env.submit(job_type, params, send=send, callback=Callback(url=url))

    def quick_job(self, url: str) -> Job:
        return self.create("test_slow", {"run_log": str(self.env.tmp / f"{uuid.uuid4().hex}.log")}, url)

    def wait_callback(self, job_id: str, state: CallbackState, limit_s: float = 60.0) -> Job:
        def reached() -> bool:
            callback = self.job(job_id).callback
            return callback is not None and callback.state is state

        self.env.wait_for(f"callback of {job_id} to be {state}", reached, limit_s)
        return self.job(job_id)

    @contextmanager
    def delivering(
        self,
        *,
        schedule: RetrySchedule = QUICK_RETRIES,
        resolver: Resolver = system_resolver,
        allow_loopback_http: bool = True,
        pollers: int = 4,
    ) -> Iterator[None]:
        """`pollers` threads consuming the callback queue: event-source-mapping stand-ins calling the Lambda
        handler, or the long-running consumer's."""
        env = self.env
        deliverer = CallbackDeliverer(
            store=env.store,
            queue=self.queue,
            secrets=DynamoDbAccessStore(
                build_client("dynamodb", region="us-east-1", endpoint_url=env.endpoint), env.settings.access_table_name
            ),
            policy=CallbackUrlPolicy(allow_loopback_http=allow_loopback_http, resolver=resolver),
            poster=lambda target, body, headers: http_post.post(target, body, headers, timeout_s=5.0),
            schedule=schedule,
            clock=UtcClock(),
        )
        records = CallbackRecords(deliverer)

        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            return handle_event(event, context, records=records)

        stop = threading.Event()

        def poll(poller: DeadLetterPoller) -> None:
            while not stop.is_set():
                poller.poll_once()

        if self.via == "lambda":
            threads = [
                threading.Thread(
                    target=poll,
                    args=(DeadLetterPoller(env.sqs, self.queue_url, handler, region="us-east-1", wait_time_s=1),),
                    daemon=True,
                )
                for _ in range(pollers)
            ]
        else:
            threads = [
                threading.Thread(
                    target=CallbackConsumer(env.sqs, self.queue_url, records, wait_time_s=1).run,
                    args=(stop,),
                    daemon=True,
                )
                for _ in range(pollers)
            ]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)

    @contextmanager
    def worker(self) -> Iterator[Worker]:
        env = self.env
        worker = Worker(
            store=env.store, queue=env.queue, objects=env.objects, settings=env.settings, callback_queue=self.queue
        )
        worker.start()
        try:
            yield worker
        finally:
            worker.stop(5.0)


@pytest.fixture(params=["lambda", "consumer"])
def rig(worker_env: WorkerEnv, request: pytest.FixtureRequest) -> Iterator[CallbackRig]:
    sqs = worker_env.sqs
    queue_url = sqs.create_queue(
        QueueName=f"callbacks-{uuid.uuid4().hex[:10]}", Attributes={"VisibilityTimeout": "30"}
    )["QueueUrl"]
    queue = SqsCallbackQueue(sqs, queue_url)
    access = DynamoDbAccessStore(
        build_client("dynamodb", region="us-east-1", endpoint_url=worker_env.endpoint),
        worker_env.settings.access_table_name,
    )
    secret = AccessAdmin(access, UtcClock()).rotate_webhook_secret(TENANT).secret
    with listening() as listener:
        yield CallbackRig(
            env=worker_env,
            queue_url=queue_url,
            queue=queue,
            outbox=CallbackOutbox(store=worker_env.store, queue=queue, clock=UtcClock()),
            secret=secret,
            listener=listener,
            via=request.param,
        )


def _only(requests: Sequence[Any]) -> Any:
    assert len(requests) == 1, requests
    return requests[0]


def test_one_signed_delivery_per_terminal_job_succeeded_failed_and_canceled(rig: CallbackRig) -> None:
    env, listener = rig.env, rig.listener
    succeeded = rig.quick_job(listener.url("/succeeded"))
    failed = rig.create("no_such_type", {"x": 1}, listener.url("/failed"))  # a permanent error: FAILED_FINAL at once
    waiting = rig.create("test_slow", {"run_log": "unused"}, listener.url("/canceled"), send=False)
    service = JobService(
        env.store,
        env.queue,
        UtcClock(),
        retention_s=86_400,
        idempotency_ttl_s=86_400,
        submit_in_flight_s=5,
        retry_republish_after_s=env.settings.retry_republish_after_s,
        on_callback_due=lambda job, status, now: rig.outbox.enqueue(job, status=status, entered_at=now),
    )
    assert rig.job(succeeded.job_id).callback == Callback(url=listener.url("/succeeded"))  # pending, no attempt yet
    # Canceled before the worker starts: its republisher (republish_after_s 1 s here) would otherwise publish the
    # unsent job and run it to SUCCEEDED first on a slow machine.
    assert service.cancel(waiting.job_id, tenant=TENANT).done
    with rig.worker(), rig.delivering():
        for job in (succeeded, failed, waiting):
            rig.wait_callback(job.job_id, CallbackState.DELIVERED)

    expected = {
        "/succeeded": (succeeded, "job.succeeded", "SUCCEEDED"),
        "/failed": (failed, "job.failed", "FAILED_FINAL"),
        "/canceled": (waiting, "job.canceled", "CANCELED"),
    }
    event_ids = set()
    for path, (job, event, status) in expected.items():
        request = _only(listener.on(path))
        assert request.signed_by(rig.secret), request.headers
        assert not request.signed_by("whsec_someone-else")
        document = request.document
        assert document["event"] == event
        assert document["job"]["jobId"] == job.job_id and document["job"]["status"] == status
        assert document["job"]["callback"]["url"] == listener.url(path)
        assert request.headers["Content-Type"] == "application/json"
        event_ids.add(request.event_id)
        stored = rig.job(job.job_id).callback
        assert stored == Callback(
            url=listener.url(path), state=CallbackState.DELIVERED, attempts=1, last_status_code=200
        )
    assert len(event_ids) == 3
    # Every job left the outbox: nothing for the sweep to send again.
    assert env.store.due_callbacks(older_than=datetime.now(UTC) + timedelta(hours=1), limit=10) == []


def test_a_listener_that_fails_three_times_gets_the_event_on_the_fourth_attempt(rig: CallbackRig) -> None:
    listener = rig.listener
    listener.statuses["/flaky"] = [500, 503, 404, 204]
    job = rig.quick_job(listener.url("/flaky"))
    with rig.worker(), rig.delivering():
        pending = rig.env.wait_terminal(job.job_id)
        assert pending.callback is not None and pending.callback.state is CallbackState.PENDING
        delivered = rig.wait_callback(job.job_id, CallbackState.DELIVERED)
    requests = listener.on("/flaky")
    assert len(requests) == 4
    assert len({request.event_id for request in requests}) == 1  # stable across redeliveries
    assert all(request.signed_by(rig.secret) for request in requests)
    # Retries come after the schedule's delay (1 s here), not at once.
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]
    assert all(gap >= 0.9 for gap in gaps), gaps
    assert delivered.callback == Callback(
        url=listener.url("/flaky"), state=CallbackState.DELIVERED, attempts=4, last_status_code=204
    )


def test_a_listener_that_never_succeeds_ends_failed_after_the_window(rig: CallbackRig) -> None:
    listener = rig.listener
    listener.statuses["/down"] = [500]
    job = rig.quick_job(listener.url("/down"))
    with rig.worker(), rig.delivering(schedule=RetrySchedule(base_s=1, max_s=1, window_s=2)):
        failed = rig.wait_callback(job.job_id, CallbackState.FAILED)
    assert failed.callback is not None and failed.callback.last_status_code == 500
    assert failed.callback.attempts == len(listener.on("/down")) >= 2  # a retry, then the window is over


def test_a_hanging_listener_does_not_slow_other_jobs(rig: CallbackRig) -> None:
    listener = rig.listener
    listener.hang_s["/hang"] = 8.0  # longer than the 5 s a delivery may take
    with rig.worker(), rig.delivering():
        hanging = rig.quick_job(listener.url("/hang"))
        rig.env.wait_for("the hanging delivery to start", lambda: bool(listener.on("/hang")), 20)
        others = [rig.quick_job(listener.url(f"/fast/{index}")) for index in range(6)]
        for job in others:
            rig.wait_callback(job.job_id, CallbackState.DELIVERED, limit_s=20)
        # All other jobs ran and were delivered while the one delivery still hung: nothing waited for it.
        hung = rig.job(hanging.job_id).callback
        assert hung is not None and hung.attempts == 0 and hung.state is CallbackState.PENDING
        assert rig.job(hanging.job_id).status is JobStatus.SUCCEEDED
        # The hung POST is given up after 5 s: an attempt without an answer, retried later.
        rig.env.wait_for(
            "the hung attempt to be recorded", lambda: (rig.job(hanging.job_id).callback or hung).attempts >= 1, 20
        )
    recorded = rig.job(hanging.job_id).callback
    assert recorded is not None and recorded.last_status_code is None


def test_a_dns_answer_that_turns_internal_after_submit_is_refused_at_delivery(rig: CallbackRig) -> None:
    listener = rig.listener
    port = listener.base_url.rsplit(":", 1)[1]
    url = f"http://hooks.example.test:{port}/rebound"
    answers = {"hooks.example.test": ["93.184.216.34"]}  # public when the job was submitted

    def resolver(host: str, _port: int) -> list[str]:
        return answers[host]

    policy = CallbackUrlPolicy(allow_loopback_http=False, resolver=resolver)
    assert policy.check(url).address == "93.184.216.34"  # what the API's submit check saw
    answers["hooks.example.test"] = ["127.0.0.1"]  # then the name was pointed at the service's own host
    job = rig.quick_job(url)
    with (
        rig.worker(),
        rig.delivering(resolver=resolver, allow_loopback_http=False, schedule=RetrySchedule(1, 1, 2)),
    ):
        failed = rig.wait_callback(job.job_id, CallbackState.FAILED)
    assert listener.received == []  # never connected, though the listener is right there on 127.0.0.1
    assert failed.callback is not None and failed.callback.attempts >= 1 and failed.callback.last_status_code is None


def test_a_callback_never_enqueued_because_the_process_died_is_sent_by_the_sweep(rig: CallbackRig) -> None:
    env, listener = rig.env, rig.listener
    job = rig.create("test_slow", {"run_log": "unused"}, listener.url("/orphan"), send=False)
    now = datetime.now(UTC)
    claimed = env.store.claim(job.job_id, now=now, lease_until=now + timedelta(seconds=30))
    assert claimed.claimed
    # The terminal write puts the job in the outbox; the process "dies" before it enqueues the delivery.
    assert env.store.succeed(job.job_id, attempt=1, result={"ok": True}, now=now, callback_due=True)
    due = env.store.due_callbacks(older_than=now + timedelta(seconds=1), limit=10)
    assert [entry.job_id for entry in due] == [job.job_id]
    # Not yet due for the sweep (younger than republish_after_s): left alone.
    assert rig.outbox.sweep(older_than=now, limit=10) == 0
    assert rig.outbox.sweep(older_than=now + timedelta(seconds=1), limit=10) == 1
    assert env.store.due_callbacks(older_than=now + timedelta(hours=1), limit=10) == []
    with rig.delivering():
        rig.wait_callback(job.job_id, CallbackState.DELIVERED)
    assert _only(listener.on("/orphan")).signed_by(rig.secret)


def test_jobs_without_a_callback_never_enter_the_outbox(rig: CallbackRig) -> None:
    env = rig.env
    plain = env.submit("test_slow", {"run_log": str(env.tmp / "plain.log")})
    with rig.worker():
        assert env.wait_terminal(plain.job_id).status is JobStatus.SUCCEEDED
    assert env.job(plain.job_id).callback is None
    assert env.store.due_callbacks(older_than=datetime.now(UTC) + timedelta(hours=1), limit=10) == []
