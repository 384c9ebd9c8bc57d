"""One JobQueue over the per-priority queues (runtime/domain/priorities.py says why and with which weights).

send() goes to the message's priority queue. receive() runs one weighted round:
  1. pick a queue by the smooth weighted round-robin among the queues not known to be empty, and poll it
     with WaitTimeSeconds 0; if it returns nothing, note it as empty and pick again among the rest;
  2. when all of them came back empty, long-poll every queue at once (one thread each) for `wait_s` and return
     what any of them brought. After a long poll that brought nothing the next round starts with the long
     poll again, so an idle worker costs one ReceiveMessage per queue per `wait_s` (3 per 20 s).
A queue noted empty sits out the weighted picks for EMPTY_RECHECK_S, so that a busy worker does not pay a
receive on each empty queue every round; a message arriving there waits at most that long before its queue
is polled again. Receipt handles carry their queue ("<priority>:<handle>"), so heartbeats, visibility changes
and deletes go to the queue the message came from.
"""

from __future__ import annotations

import contextvars
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from runtime.adapters.sqs_batch_sender import BatchingSqsJobQueue
from runtime.adapters.sqs_queue import SqsJobQueue
from runtime.domain.job import Priority
from runtime.domain.ports import JobMessage, JobQueue, ReceivedMessage
from runtime.domain.priorities import ORDER, WEIGHTS, WeightedRoundRobin

# How long a queue that returned nothing sits out the weighted picks of a busy worker.
EMPTY_RECHECK_S = 1.0
_SEPARATOR = ":"


class PriorityJobQueue:
    """`queues` maps each priority to its queue; `normal` is required, and a priority without a queue of its own
    sends to the normal queue (a single-queue deployment: no ordering between those two)."""

    def __init__(
        self,
        queues: Mapping[Priority, JobQueue],
        *,
        weights: Mapping[Priority, int] = WEIGHTS,
        recheck_s: float = EMPTY_RECHECK_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if Priority.NORMAL not in queues:
            raise ValueError("the normal priority needs a queue")
        self._queues = {priority: queues[priority] for priority in ORDER if priority in queues}
        self._picker = WeightedRoundRobin({priority: weights[priority] for priority in self._queues})
        self._recheck_s = recheck_s
        self._monotonic = monotonic
        self._empty_until: dict[Priority, float] = {}
        self._idle = False

    @property
    def queues(self) -> Mapping[Priority, JobQueue]:
        return dict(self._queues)

    def send(self, message: JobMessage) -> None:
        self._queues.get(message.priority, self._queues[Priority.NORMAL]).send(message)

    def receive(self, *, max_messages: int, wait_s: int, visibility_timeout_s: int) -> Sequence[ReceivedMessage]:
        if not self._idle:
            now = self._monotonic()
            candidates = [priority for priority in self._queues if self._empty_until.get(priority, 0.0) <= now]
            while candidates:
                priority = self._picker.pick(candidates)
                received = self._queues[priority].receive(
                    max_messages=max_messages, wait_s=0, visibility_timeout_s=visibility_timeout_s
                )
                if received:
                    self._empty_until.pop(priority, None)
                    return _tagged(priority, received)
                self._empty_until[priority] = now + self._recheck_s
                candidates.remove(priority)
            if wait_s == 0:
                return []
        by_priority = self._poll_all(
            max_messages=max_messages, wait_s=wait_s, visibility_timeout_s=visibility_timeout_s
        )
        now = self._monotonic()
        for priority, received in by_priority.items():
            if received:
                self._empty_until.pop(priority, None)
            else:
                self._empty_until[priority] = now + self._recheck_s
        self._idle = not any(by_priority.values())
        return [message for priority, received in by_priority.items() for message in _tagged(priority, received)]

    def _poll_all(
        self, *, max_messages: int, wait_s: int, visibility_timeout_s: int
    ) -> dict[Priority, Sequence[ReceivedMessage]]:
        """Long-polls every queue at once. Raises the first error only when no queue brought messages, so that
        the messages already received are never dropped."""
        outcomes: dict[Priority, Sequence[ReceivedMessage] | Exception] = {}

        def poll(priority: Priority) -> None:
            try:
                outcomes[priority] = self._queues[priority].receive(
                    max_messages=max_messages, wait_s=wait_s, visibility_timeout_s=visibility_timeout_s
                )
            except Exception as exc:  # noqa: BLE001 - handed to the caller below
                outcomes[priority] = exc

        first, *others = self._queues
        # Daemon threads with the caller's context (the AWS call category, the trace): a poll still waiting
        # when the process exits must not hold it open; its messages come back after the visibility timeout.
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(poll, priority),
                             name=f"receive-{priority.value}", daemon=True)
            for priority in others
        ]
        for thread in threads:
            thread.start()
        poll(first)
        for thread in threads:
            thread.join()
        received = {priority: outcome for priority, outcome in outcomes.items() if not isinstance(outcome, Exception)}
        errors = [outcome for outcome in outcomes.values() if isinstance(outcome, Exception)]
        if errors and not any(received.values()):
            raise errors[0]
        return {priority: received[priority] for priority in self._queues if priority in received}

    def delete_batch(self, receipt_handles: Sequence[str]) -> None:
        for priority, handles in _grouped(receipt_handles).items():
            self._queue_of(priority).delete_batch(handles)

    def change_visibility(self, receipt_handle: str, timeout_s: int) -> None:
        priority, handle = _split(receipt_handle)
        self._queue_of(priority).change_visibility(handle, timeout_s)

    def change_visibility_batch(self, receipt_handles: Sequence[str], timeout_s: int) -> None:
        for priority, handles in _grouped(receipt_handles).items():
            self._queue_of(priority).change_visibility_batch(handles, timeout_s)

    def ping(self) -> None:
        for queue in self._queues.values():
            queue.ping()

    def close(self, timeout_s: float = 5.0) -> None:
        """Closes the batching senders (what is waiting goes out)."""
        for queue in self._queues.values():
            if isinstance(queue, BatchingSqsJobQueue):
                queue.close(timeout_s)

    def _queue_of(self, priority: Priority) -> JobQueue:
        queue = self._queues.get(priority)
        if queue is None:
            raise ValueError(f"no queue for priority {priority.value!r}")
        return queue


def sqs_priority_queue(
    client: Any,
    urls: Mapping[Priority, str],
    *,
    trace_header: Callable[[], str | None] | None = None,
    send_linger_s: float = 0.0,
) -> PriorityJobQueue:
    """The per-priority SQS queues as one JobQueue; with `send_linger_s` > 0 each queue coalesces its own sends
    into SendMessageBatch."""
    if len(set(urls.values())) < len(urls):
        raise ValueError("each priority needs a queue of its own: two priorities share a queue url")
    queues: dict[Priority, JobQueue] = {}
    for priority, url in urls.items():
        queue = SqsJobQueue(client, url, trace_header=trace_header)
        queues[priority] = BatchingSqsJobQueue(queue, linger_s=send_linger_s) if send_linger_s > 0 else queue
    return PriorityJobQueue(queues)


def _tagged(priority: Priority, received: Sequence[ReceivedMessage]) -> list[ReceivedMessage]:
    return [
        dataclasses.replace(
            message,
            receipt_handle=f"{priority.value}{_SEPARATOR}{message.receipt_handle}",
            message=dataclasses.replace(message.message, priority=priority) if message.message else None,
        )
        for message in received
    ]


def _split(receipt_handle: str) -> tuple[Priority, str]:
    name, _, handle = receipt_handle.partition(_SEPARATOR)
    try:
        return Priority(name), handle
    except ValueError:
        raise ValueError(f"not a priority queue receipt handle: {receipt_handle[:40]!r}") from None


def _grouped(receipt_handles: Sequence[str]) -> dict[Priority, list[str]]:
    groups: dict[Priority, list[str]] = {}
    for receipt_handle in receipt_handles:
        priority, handle = _split(receipt_handle)
        groups.setdefault(priority, []).append(handle)
    return groups
