"""The worker's liveness file: the receive loop touches it as it turns, and the container's health check
(`python -m runtime.worker.healthcheck`) fails when it has not been touched for MAX_AGE_S, so that ECS replaces a
hung worker, and a deployment whose workers hang fails its circuit breaker and rolls back.

Only the standard library: the health check imports this module in a fresh interpreter every 30 s."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

# Where the file is: the environment may move it (a test, a container whose /tmp is read-only).
FILE_ENV = "JOBS_LIVENESS_FILE"
DEFAULT_FILE = "/tmp/job-tickets-worker.alive"  # in the worker task's writable /tmp (k8s: emptyDir; ECS: a volume)
# The longest a healthy receive loop goes without turning: a long poll that times out and is retried (25 s read
# timeout + 2 s connect, three tries: 81 s) or the longest back-off after a failed receive (20 s). A failing
# receive still turns the loop: an outage of SQS replaces no worker, only a loop that stopped does.
MAX_AGE_S = 120.0
# The loop may turn many times a second: one touch a second is enough for a bound of minutes.
MIN_INTERVAL_S = 1.0
# While every slot is busy the loop waits for a free one; it wakes this often to show it is still there.
IDLE_BEAT_S = 5.0


def liveness_file() -> Path:
    return Path(os.environ.get(FILE_ENV) or DEFAULT_FILE)


def age_s(path: Path, *, now: float | None = None) -> float | None:
    """Seconds since `path` was last touched (wall clock: the health check is another process); None if absent."""
    try:
        touched = path.stat().st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - touched


class Liveness:
    """`beat()` touches the file, at most once per `min_interval_s`. A file that cannot be written is reported
    once through `on_error` and never stops the worker (the health check then fails, which is the truth)."""

    def __init__(
        self,
        path: Path,
        *,
        min_interval_s: float = MIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[OSError], None] | None = None,
    ) -> None:
        self._path = path
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._on_error = on_error
        self._last: float | None = None
        self._failed = False

    @property
    def path(self) -> Path:
        return self._path

    def beat(self) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._min_interval_s:
            return
        self._last = now
        try:
            self._path.touch()
        except OSError as exc:
            if not self._failed and self._on_error is not None:
                self._on_error(exc)
            self._failed = True
        else:
            self._failed = False
