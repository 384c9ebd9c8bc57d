"""Batched message deletes: handles collect for up to `linger_s` (or until 10 are waiting), then one
DeleteMessageBatch goes out, so a busy worker pays one request per ten jobs."""

from __future__ import annotations

import time
from collections.abc import Callable

from runtime.batching import Coalescer
from runtime.domain.ports import QUEUE_BATCH_LIMIT, JobQueue
from runtime.observability import aws_calls, logs
from runtime.observability.names import LogEvent


class BatchDeleter:
    def __init__(
        self,
        queue: JobQueue,
        *,
        linger_s: float,
        category: str = "worker",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queue = queue
        self._category = category
        self._batches = Coalescer(
            self._send, linger_s=linger_s, batch_size=QUEUE_BATCH_LIMIT, name="sqs-deleter", monotonic=monotonic
        )

    def add(self, receipt_handle: str) -> None:
        if not self._batches.add(receipt_handle):  # after stop(): nothing left to batch with
            self._send([receipt_handle])

    def pending_count(self) -> int:
        return self._batches.pending_count()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Sends whatever is waiting, then ends the thread."""
        self._batches.close(timeout_s)

    def flush(self) -> None:
        self._batches.flush()

    def _send(self, batch: list[str]) -> None:
        try:
            with aws_calls.category(self._category):
                self._queue.delete_batch(batch)
        except Exception as exc:  # noqa: BLE001 - an undeleted message comes back and is deleted as a duplicate
            logs.log_event(
                LogEvent.DELETE_FAILED, level="warning", count=len(batch), error=f"{type(exc).__name__}: {exc}"
            )
