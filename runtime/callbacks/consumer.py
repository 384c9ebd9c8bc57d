"""`python -m runtime.callbacks.consumer`: delivers the callback queue's messages in a long-running process, where
no Lambda consumes the queue (Kubernetes, the local all-in-one).

A few threads (CONSUMERS) each long-poll the queue for one message at a time, as the Lambda's event source mapping
does (batch size 1), and hand it to the Lambda's own per-message logic (runtime/callback_handler.py: the same
delivery, poison-message and error handling). A handled message is deleted; one whose handling raised (the store or
the queue failed) is left and comes back after the queue's visibility timeout, as a batch item failure does under
Lambda. One endpoint that hangs holds one thread for at most the callback timeout while the others go on.

Liveness (runtime/worker/liveness.py, checked by `python -m runtime.worker.healthcheck --file LIVENESS_FILE`): the
file is touched only once every thread has turned its loop since the last touch, so one wedged thread fails the
check as a wedged worker loop does.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from runtime.observability import aws_calls, logs
from runtime.observability.names import LogEvent
from runtime.worker.liveness import IDLE_BEAT_S, Liveness

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

CONSUMERS = 4
WAIT_TIME_S = 20
ERROR_PAUSE_S = 1.0
# In the container's writable /tmp (Kubernetes: an emptyDir), apart from the worker's file (the all-in-one runs both).
LIVENESS_FILE = "/tmp/job-tickets-callbacks.alive"
# After SIGTERM: the longest wait for deliveries under way (a POST gives up after the callback timeout, at most 5 s;
# the store and queue calls around it take little). The Deployment's grace period is longer.
STOP_DEADLINE_S = 20.0


class MessageHandler(Protocol):
    def handle_message(self, body: str, message_id: str, trace_header: str | None) -> str: ...


class CallbackConsumer:
    """One receive -> handle -> delete round at a time."""

    def __init__(
        self, sqs: SQSClient, queue_url: str, handler: MessageHandler, *, wait_time_s: int = WAIT_TIME_S
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._wait_time_s = wait_time_s
        self.busy = threading.Event()
        self.turns = 0  # loop turns, read by the liveness beat

    def poll_once(self) -> int:
        """Receives at most one message and handles it; returns how many messages were deleted."""
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=self._wait_time_s,
            MessageSystemAttributeNames=["AWSTraceHeader"],
        ).get("Messages", [])
        deleted = 0
        for message in messages:
            self.busy.set()
            try:
                with aws_calls.category("callbacks"):
                    try:
                        self._handler.handle_message(
                            message.get("Body", ""),
                            message["MessageId"],
                            message.get("Attributes", {}).get("AWSTraceHeader"),
                        )
                    except Exception:  # noqa: BLE001 - the handler logged it (callback_record_failed)
                        continue  # left on the queue: back after its visibility timeout, as a batch item failure
                    self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
                deleted += 1
            finally:
                self.busy.clear()
        return deleted

    def run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - SQS may be briefly away; keep polling
                logs.log_event(LogEvent.CALLBACK_POLL_FAILED, level="warning", error=f"{type(exc).__name__}: {exc}")
                stopping.wait(ERROR_PAUSE_S)
            self.turns += 1


class AllTurned:
    """Beats `liveness` when every consumer has turned its loop since the last beat."""

    def __init__(self, consumers: list[CallbackConsumer], liveness: Liveness) -> None:
        self._consumers = consumers
        self._liveness = liveness
        self._seen = [-1] * len(consumers)  # the first check beats: nothing has had time to wedge yet

    def check(self) -> bool:
        turns = [consumer.turns for consumer in self._consumers]
        if any(now <= seen for now, seen in zip(turns, self._seen, strict=True)):
            return False
        self._seen = turns
        self._liveness.beat()
        return True


def _liveness_failed(exc: OSError) -> None:
    logs.log_event(LogEvent.CALLBACK_LIVENESS_FAILED, level="warning", error=f"{type(exc).__name__}: {exc}")


def main() -> int:
    from runtime import aws_clients, entrypoint
    from runtime.callback_handler import CallbackRecords, build_deliverer

    settings = entrypoint.configured_settings()
    if settings is None:
        return entrypoint.BAD_SETTINGS_EXIT
    if not settings.callback_queue_url:
        print("callback delivery needs JOBS_CALLBACK_QUEUE_URL (or <ssm path>/callback-queue-url)", file=sys.stderr)
        return entrypoint.BAD_SETTINGS_EXIT
    records = CallbackRecords(build_deliverer(settings))
    sqs = aws_clients.client("sqs", settings)
    consumers = [CallbackConsumer(sqs, settings.callback_queue_url, records) for _ in range(CONSUMERS)]
    stopping = threading.Event()
    threads = [
        threading.Thread(target=consumer.run, args=(stopping,), name=f"callbacks-{i}", daemon=True)
        for i, consumer in enumerate(consumers)
    ]

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    entrypoint.on_stop_signals(on_signal)
    liveness = AllTurned(consumers, Liveness(Path(LIVENESS_FILE), on_error=_liveness_failed))
    logs.log_event(LogEvent.CALLBACK_CONSUMER_STARTING, queueUrl=settings.callback_queue_url, consumers=CONSUMERS)
    for thread in threads:
        thread.start()
    while not stopping.wait(IDLE_BEAT_S):
        liveness.check()
    # Deliveries under way finish; idle long polls are left (daemon threads): a message one of them receives
    # now comes back after the visibility timeout.
    deadline = time.monotonic() + STOP_DEADLINE_S
    for consumer, thread in zip(consumers, threads, strict=True):
        if consumer.busy.is_set():
            thread.join(max(0.0, deadline - time.monotonic()))
    logs.log_event(LogEvent.CALLBACK_CONSUMER_STOPPED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
