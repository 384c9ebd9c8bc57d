"""A worker's hold on one received message, and on its job's attempt once claimed: the line between the job thread
writing on the attempt's behalf (the claim, progress, the outcome) and the worker handing the message back
unfinished (a release at shutdown, drain or scale-in). Whichever takes the hold first wins: a write after a
release never lands, so a job handed back and claimed again cannot get a stale outcome from the first try."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Hold:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._released = False
        self._attempt: int | None = None

    @contextmanager
    def writing(self) -> Iterator[bool]:
        """Held around a write on the attempt's behalf; True while the message was not released (write), False
        once it was (skip the write)."""
        with self._lock:
            yield not self._released

    def claimed(self, attempt: int) -> None:
        """Call under `writing`: the job is PROCESSING under `attempt` for this hold."""
        self._attempt = attempt

    @contextmanager
    def releasing(self) -> Iterator[int | None]:
        """Held around the release: from here on no write goes out for this hold; gives the claimed attempt (None
        when the job was not claimed, or not by this hold)."""
        with self._lock:
            self._released = True
            yield self._attempt

    @property
    def released(self) -> bool:
        with self._lock:
            return self._released
