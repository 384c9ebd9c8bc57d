"""Coalesces concurrent sends into SendMessageBatch (up to QUEUE_BATCH_LIMIT, 10, entries, and SQS's bytes per
batch: a coalesced batch of large messages goes out in several calls), so a busy API pays about one SQS request per
ten submits. A JobQueue: everything but send goes straight to the wrapped SqsJobQueue."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from runtime.adapters.sqs_queue import OutgoingMessage, SqsJobQueue, size_bounded_batches
from runtime.batching import Coalescer
from runtime.domain.ports import QUEUE_BATCH_LIMIT, JobMessage, QueueUnavailable, ReceivedMessage
from runtime.observability import aws_calls, logs, tracing
from runtime.observability.names import LogEvent

# How long a submitting thread waits for its batch. A send that outlives it may still go out: a duplicate
# message is harmless, and a job left unpublished is the republisher's.
SEND_WAIT_S = 10.0


@dataclass
class _Waiting:
    outgoing: OutgoingMessage
    future: Future[None] = field(default_factory=Future)


class BatchingSqsJobQueue:
    """send() queues the message and waits for its own batch's answer; a flusher thread (one per instance,
    started on the first send, daemon) sends when QUEUE_BATCH_LIMIT are waiting or `linger_s` after the first one waits.
    A failed entry, or a failed call, raises QueueUnavailable in exactly the senders concerned."""

    def __init__(
        self,
        queue: SqsJobQueue,
        *,
        linger_s: float,
        wait_s: float = SEND_WAIT_S,
        category: str = "submit",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queue = queue
        self._wait_s = wait_s
        self._category = category
        self._batches = Coalescer(
            self._send, linger_s=linger_s, batch_size=QUEUE_BATCH_LIMIT, name="sqs-batch-sender", monotonic=monotonic
        )

    def send(self, message: JobMessage) -> None:
        # The message (body, trace header) is built here: the trace header lives in this thread's context.
        waiting = _Waiting(self._queue.outgoing(message))
        if not self._batches.add(waiting):  # after close(): nothing left to coalesce with
            self._queue.send(message)
            return
        try:
            waiting.future.result(timeout=self._wait_s)
        except FutureTimeout:
            raise QueueUnavailable(f"sqs send not answered within {self._wait_s} s") from None

    def send_many(
        self, messages: Sequence[JobMessage], *, may_start: Callable[[], bool] | None = None
    ) -> frozenset[int]:
        # Already in full batches: coalescing would only add the linger.
        return self._queue.send_many(messages, may_start=may_start)

    def close(self, timeout_s: float = 5.0) -> None:
        """Sends whatever is waiting, then ends the flusher thread; later sends go out one by one."""
        self._batches.close(timeout_s)

    def flush(self) -> None:
        self._batches.flush()

    def _send(self, coalesced: list[_Waiting]) -> None:
        for part in size_bounded_batches([waiting.outgoing for waiting in coalesced]):
            self._send_batch(coalesced[part.start : part.stop])

    def _send_batch(self, batch: list[_Waiting]) -> None:
        try:
            # The batch serves many requests: its span links to each sender's instead of joining one trace.
            linked = [waiting.outgoing.trace_header for waiting in batch]
            with aws_calls.category(self._category), tracing.span("sqs.send_batch", linked_headers=linked):
                failed = self._queue.send_batch([waiting.outgoing for waiting in batch])
        except Exception as exc:  # noqa: BLE001 - every sender of the batch hears it; their jobs stay PENDING
            logs.log_event(
                LogEvent.SEND_BATCH_FAILED, level="warning", count=len(batch), error=f"{type(exc).__name__}: {exc}"
            )
            for waiting in batch:
                waiting.future.set_exception(QueueUnavailable(f"sqs send batch failed: {exc}"))
            return
        for index, waiting in enumerate(batch):
            code = failed.get(index)
            if code is None:
                waiting.future.set_result(None)
            else:
                waiting.future.set_exception(QueueUnavailable(f"sqs send batch refused the entry: {code}"))

    # The rest of JobQueue, unchanged.
    def receive(self, *, max_messages: int, wait_s: int, visibility_timeout_s: int) -> Sequence[ReceivedMessage]:
        return self._queue.receive(max_messages=max_messages, wait_s=wait_s, visibility_timeout_s=visibility_timeout_s)

    def delete_batch(self, receipt_handles: Sequence[str]) -> None:
        self._queue.delete_batch(receipt_handles)

    def change_visibility(self, receipt_handle: str, timeout_s: int) -> None:
        self._queue.change_visibility(receipt_handle, timeout_s)

    def change_visibility_batch(self, receipt_handles: Sequence[str], timeout_s: int) -> None:
        self._queue.change_visibility_batch(receipt_handles, timeout_s)

    def ping(self) -> None:
        self._queue.ping()
