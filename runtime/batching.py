"""Coalesces items handed in by many threads into batches of up to `batch_size`, sent by one background
thread when a batch is full or `linger_s` after its oldest item arrived (SQS batch calls take QUEUE_BATCH_LIMIT)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from runtime.domain.ports import QUEUE_BATCH_LIMIT

T = TypeVar("T")


class Coalescer(Generic[T]):
    """`send_batch` runs on the coalescer's own thread (started on the first add, daemon) and must not raise:
    a batch's failure is its caller's to report to whoever waits for it."""

    def __init__(
        self,
        send_batch: Callable[[list[T]], None],
        *,
        linger_s: float,
        batch_size: int = QUEUE_BATCH_LIMIT,
        name: str = "coalescer",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send_batch = send_batch
        self._linger_s = linger_s
        self._batch_size = batch_size
        self._name = name
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._items: list[T] = []
        self._oldest_at: float | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, item: T) -> bool:
        """Queues the item; False once closed (the caller then sends it alone)."""
        with self._cond:
            if self._closed:
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            if self._oldest_at is None:
                self._oldest_at = self._monotonic()
            self._items.append(item)
            self._cond.notify()
            return True

    def pending_count(self) -> int:
        with self._cond:
            return len(self._items)

    def close(self, timeout_s: float = 5.0) -> None:
        """Sends whatever is waiting, then ends the thread; later adds are refused."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        self.flush()

    def flush(self) -> None:
        while batch := self.take(force=True):
            self._send_batch(batch)

    def take(self, *, force: bool) -> list[T]:
        """The next batch if one is due (full, or its oldest item has lingered), or any waiting items if forced."""
        with self._cond:
            if not self._items:
                return []
            due = self._oldest_at is not None and self._monotonic() - self._oldest_at >= self._linger_s
            if not (force or due or len(self._items) >= self._batch_size):
                return []
            batch, self._items = self._items[: self._batch_size], self._items[self._batch_size :]
            self._oldest_at = self._monotonic() if self._items else None
            return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._items:
                    self._cond.wait()
                if self._closed:
                    return
                if len(self._items) < self._batch_size and self._oldest_at is not None:
                    remaining = self._linger_s - (self._monotonic() - self._oldest_at)
                    if remaining > 0:
                        self._cond.wait(remaining)
                        continue
            if batch := self.take(force=True):
                self._send_batch(batch)
