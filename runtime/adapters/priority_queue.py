"""One JobQueue over the per-priority queues (runtime/domain/priorities.py says why and with which weights).

send() goes to the message's priority queue. receive() runs one weighted round:
  1. pick a queue by the smooth weighted round-robin among the queues not known to be empty, and poll it
     with WaitTimeSeconds 0; if it returns nothing, note it as empty and pick again among the rest;
  2. when all of them came back empty, long-poll every queue at once (one daemon thread each) for `wait_s`
     and return as soon as one of them brings messages. The others' polls stay out: the next rounds take
     what they bring first (most often a high message that arrived while low jobs ran), and leave their
     queues out of the picks until then. After long polls that brought nothing the next round starts with
     the long polls again, so an idle worker costs one ReceiveMessage per queue per `wait_s` (3 per 20 s).
     A long poll that brought fewer messages than asked for drained its queue: the next round long-polls it
     again instead of short-polling it first (a lightly loaded worker pays one receive per job, not two).
A queue noted empty sits out the weighted picks for EMPTY_RECHECK_S, so that a busy worker does not pay a
receive on each empty queue every round; a message arriving there waits at most that long before its queue
is polled again. Messages a long poll brought are held, untracked by the heartbeat, only until the worker's
next receive (when a job slot frees); if that took longer than the visibility timeout they would be
redelivered, which a conditional claim makes harmless. Receipt handles carry their queue
("<priority>:<handle>"), so heartbeats, visibility changes and deletes go to the queue the message came from.
"""

from __future__ import annotations

import contextvars
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
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
        self._long_polls: dict[Priority, futures.Future[Sequence[ReceivedMessage]]] = {}

    @property
    def queues(self) -> Mapping[Priority, JobQueue]:
        return dict(self._queues)

    def send(self, message: JobMessage) -> None:
        self._queues.get(message.priority, self._queues[Priority.NORMAL]).send(message)

    def send_many(
        self, messages: Sequence[JobMessage], *, may_start: Callable[[], bool] | None = None
    ) -> frozenset[int]:
        """Each priority's messages go to its queue in full batches; the unsent indexes are `messages`'."""
        by_queue: dict[Priority, list[int]] = {}
        for index, message in enumerate(messages):
            priority = message.priority if message.priority in self._queues else Priority.NORMAL
            by_queue.setdefault(priority, []).append(index)
        unsent: set[int] = set()
        for priority, indexes in by_queue.items():
            failed = self._queues[priority].send_many([messages[index] for index in indexes], may_start=may_start)
            unsent.update(indexes[position] for position in failed)
        return frozenset(unsent)

    def receive(self, *, max_messages: int, wait_s: int, visibility_timeout_s: int) -> Sequence[ReceivedMessage]:
        finished = self._finished_long_polls()
        if any(finished.values()):
            return self._settle(finished, max_messages=max_messages)
        if not self._idle:
            now = self._monotonic()
            # A queue with a long poll still out is left to it: what arrives there comes back through it.
            candidates = [
                priority
                for priority in self._queues
                if self._empty_until.get(priority, 0.0) <= now and priority not in self._long_polls
            ]
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
        for priority in self._queues:
            if priority not in self._long_polls:
                self._long_polls[priority] = self._start_long_poll(
                    priority, max_messages=max_messages, wait_s=wait_s, visibility_timeout_s=visibility_timeout_s
                )
        futures.wait(list(self._long_polls.values()), return_when=futures.FIRST_COMPLETED)
        finished = self._finished_long_polls()
        self._idle = not any(finished.values())
        return self._settle(finished, max_messages=max_messages)

    def _start_long_poll(
        self, priority: Priority, *, max_messages: int, wait_s: int, visibility_timeout_s: int
    ) -> futures.Future[Sequence[ReceivedMessage]]:
        """One long poll in a daemon thread with the caller's context (the AWS call category, the trace): a poll
        still waiting when the process exits must not hold it open; its messages come back after the visibility
        timeout."""
        future: futures.Future[Sequence[ReceivedMessage]] = futures.Future()

        def poll() -> None:
            try:
                future.set_result(
                    self._queues[priority].receive(
                        max_messages=max_messages, wait_s=wait_s, visibility_timeout_s=visibility_timeout_s
                    )
                )
            except Exception as exc:  # noqa: BLE001 - handed to the caller by _settle
                future.set_exception(exc)

        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(poll,), name=f"receive-{priority.value}", daemon=True).start()
        return future

    def _finished_long_polls(self) -> dict[Priority, Sequence[ReceivedMessage] | BaseException]:
        finished: dict[Priority, Sequence[ReceivedMessage] | BaseException] = {}
        for priority, future in list(self._long_polls.items()):
            if future.done():
                del self._long_polls[priority]
                error = future.exception()
                finished[priority] = error if error is not None else future.result()
        return finished

    def _settle(
        self, finished: dict[Priority, Sequence[ReceivedMessage] | BaseException], *, max_messages: int
    ) -> list[ReceivedMessage]:
        """The messages of the finished long polls, highest priority first. Raises the first error only when none
        brought messages, so that messages already received are never dropped. A long poll that brought fewer
        than `max_messages` emptied its queue (it waited for the first message and took all there were): that
        queue sits out the short polls like one found empty, and the next round waits on a long poll there,
        which answers at once if more came meanwhile. Under a light steady load this saves the short poll that
        would otherwise follow each message and find nothing (one ReceiveMessage per job instead of two)."""
        now = self._monotonic()
        messages: list[ReceivedMessage] = []
        errors: list[BaseException] = []
        for priority in self._queues:
            outcome = finished.get(priority)
            if outcome is None:
                continue
            if isinstance(outcome, BaseException):
                errors.append(outcome)
            elif outcome:
                if len(outcome) < max_messages:
                    self._empty_until[priority] = now + self._recheck_s
                else:
                    self._empty_until.pop(priority, None)
                messages.extend(_tagged(priority, outcome))
            else:
                self._empty_until[priority] = now + self._recheck_s
        if errors and not messages:
            raise errors[0]
        return messages

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
