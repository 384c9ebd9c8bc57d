"""Batched message deletes: handles collect for up to `linger_s` (or until 10 are waiting), then one
DeleteMessageBatch goes out, so a busy worker pays one request per ten jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from runtime.domain.ports import JobQueue
from runtime.observability import aws_calls, logs

SQS_BATCH_LIMIT = 10


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
        self._linger_s = linger_s
        self._category = category
        self._monotonic = monotonic
        self._pending: list[str] = []
        self._oldest_at: float | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sqs-deleter", daemon=True)
        self._thread.start()

    def add(self, receipt_handle: str) -> None:
        with self._cond:
            if self._oldest_at is None:
                self._oldest_at = self._monotonic()
            self._pending.append(receipt_handle)
            self._cond.notify()

    def pending_count(self) -> int:
        with self._cond:
            return len(self._pending)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Sends whatever is waiting, then ends the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.flush()

    def flush(self) -> None:
        while True:
            batch = self._take(force=True)
            if not batch:
                return
            self._send(batch)

    def _take(self, *, force: bool) -> list[str]:
        with self._cond:
            if not self._pending:
                return []
            due = self._oldest_at is not None and self._monotonic() - self._oldest_at >= self._linger_s
            if not (force or due or len(self._pending) >= SQS_BATCH_LIMIT):
                return []
            batch, self._pending = self._pending[:SQS_BATCH_LIMIT], self._pending[SQS_BATCH_LIMIT:]
            self._oldest_at = self._monotonic() if self._pending else None
            return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._pending:
                    self._cond.wait()
                if self._stopping:
                    return
                if len(self._pending) < SQS_BATCH_LIMIT and self._oldest_at is not None:
                    remaining = self._linger_s - (self._monotonic() - self._oldest_at)
                    if remaining > 0:
                        self._cond.wait(remaining)
                        continue
            batch = self._take(force=True)
            if batch:
                self._send(batch)

    def _send(self, batch: list[str]) -> None:
        try:
            with aws_calls.category(self._category):
                self._queue.delete_batch(batch)
        except Exception as exc:  # noqa: BLE001 - an undeleted message comes back and is deleted as a duplicate
            logs.log_event("delete_failed", level="warning", count=len(batch), error=f"{type(exc).__name__}: {exc}")
