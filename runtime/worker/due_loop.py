"""A background thread that sleeps until its owner has work due, then does it: the loop the lazy claimer
(runtime/worker/claimer.py) and the progress writer (runtime/worker/progress.py) share. The owner says when its next
work is due and what doing it means; `notify_changed` (under `self._changed`) wakes the thread when that may have
moved earlier."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

from runtime.observability import aws_calls


class DueLoop(ABC):
    def __init__(self, *, thread_name: str, aws_category: str) -> None:
        self._thread_name = thread_name
        self._aws_category = aws_category
        self._changed = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify()
        if self._thread is not None:
            self._thread.join(5.0)

    @abstractmethod
    def _next_due_s(self) -> float | None:
        """Seconds until work is due (0: now); None when none is waiting. Called under `self._changed`."""

    @abstractmethod
    def _run_due(self) -> None:
        """Does the work due now (outside the lock)."""

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopping:
                    wait_s = self._next_due_s()
                    if wait_s == 0.0:
                        break
                    self._changed.wait(wait_s)
                if self._stopping:
                    return
            with aws_calls.category(self._aws_category):
                self._run_due()
