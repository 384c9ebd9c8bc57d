"""ECS task scale-in protection: the worker's task is protected while it holds at least one job and unprotected
when it goes idle or stops, through the ECS agent's endpoint PUT $ECS_AGENT_URI/task-protection/v1/state.

The PUTs run on a thread of their own with a short timeout, so an unreachable or slow agent costs a warning
and a metric, never a job's time. Each protection expires a little after one heartbeat interval; the
heartbeat renews it shortly before it runs out, so a worker whose heartbeat stops no longer holds its task.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from runtime.observability import logs, metrics
from runtime.observability.names import LogEvent, Metric

STATE_PATH = "/task-protection/v1/state"
# The agent runs next to the task; a healthy one answers in milliseconds.
AGENT_TIMEOUT_S = 2.0
# A late beat is late by the AWS calls of the previous one, not by a share of a long interval: capped.
LATE_BEAT_MAX_S = 60.0
MAX_EXPIRES_IN_MINUTES = 2880  # the agent's limit (48 h); the longest heartbeat interval needs 242
FAILURE_METRIC = Metric.TASK_PROTECTION_FAILURES
FAILURE_EVENT = LogEvent.TASK_PROTECTION_FAILED
_ERROR_BODY_CHARS = 200


def renew_window_s(heartbeat_interval_s: float) -> float:
    """Renew at a beat when the protection has at most this long left: until the next beat (which may come
    late by up to half an interval, capped) plus one PUT's timeout."""
    return heartbeat_interval_s + min(heartbeat_interval_s / 2, LATE_BEAT_MAX_S) + AGENT_TIMEOUT_S


def expires_in_minutes(heartbeat_interval_s: float) -> int:
    """ExpiresInMinutes: the renew window rounded up to whole minutes, at least 1, and always longer than the
    window (a whole-minute window gets one more), so a fresh protection is never due for renewal at once."""
    minutes = math.floor(renew_window_s(heartbeat_interval_s) / 60) + 1
    if minutes > MAX_EXPIRES_IN_MINUTES:
        raise ValueError(f"heartbeat interval too long for task protection: {heartbeat_interval_s}s")
    return minutes


class TaskProtection:
    """busy()/idle()/beat() only record what is wanted and wake the thread; apply() does the one PUT that is
    due, if any: protect on idle->busy, renew when the protection is about to run out, unprotect on
    busy->idle. stop() unprotects (bounded by the timeout) and ends the thread."""

    def __init__(
        self,
        agent_uri: str,
        *,
        heartbeat_interval_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = agent_uri.rstrip("/") + STATE_PATH
        self._expires_in_minutes = expires_in_minutes(heartbeat_interval_s)
        self._renew_window_s = renew_window_s(heartbeat_interval_s)
        self._monotonic = monotonic
        # The agent is link-local: never send its requests to an HTTP(S)_PROXY from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._changed = threading.Condition()
        self._busy = False
        self._stopping = False
        self._expires_at: float | None = None  # monotonic time a confirmed protection runs out
        self._maybe_protected = False  # a protect was sent and no unprotect confirmed since
        # Set by a failed PUT: the next try waits for the next beat, so a dead agent gets one request per interval.
        self._wait_for_beat = False
        self._thread: threading.Thread | None = None

    @property
    def expires_in_minutes(self) -> int:
        return self._expires_in_minutes

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="task-protection", daemon=True)
        self._thread.start()

    def busy(self) -> None:
        """The worker now holds a job (it held none)."""
        with self._changed:
            if not self._stopping:
                self._busy = True
                self._changed.notify_all()

    def idle(self) -> None:
        """The worker holds no job any more."""
        with self._changed:
            self._busy = False
            self._changed.notify_all()

    def beat(self) -> None:
        """Called by the heartbeat every interval: renews a protection about to run out, retries a failed PUT."""
        with self._changed:
            self._wait_for_beat = False
            self._changed.notify_all()

    def stop(self) -> None:
        """Unprotects the task if it may be protected and ends the thread. Waits at most for a PUT under way
        and the unprotect, each bounded by the timeout; a thread still waiting then is a daemon."""
        with self._changed:
            self._busy = False
            self._stopping = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(2 * AGENT_TIMEOUT_S + 0.5)

    def apply(self) -> bool:
        """Sends the one PUT that is due now, if any, and returns whether it sent one. The thread calls it on
        every wake-up; a test that never start()s calls it itself, one step at a time."""
        with self._changed:
            enabled = self._due()
        if enabled is None:
            return False
        self._send(enabled)
        return True

    def _send(self, enabled: bool) -> None:
        with self._changed:
            if enabled:
                self._maybe_protected = True
        sent_at = self._monotonic()
        ok = self._put(enabled)
        with self._changed:
            if not ok:
                self._wait_for_beat = True
                self._expires_at = None
            elif enabled:
                self._expires_at = sent_at + self._expires_in_minutes * 60
            else:
                self._expires_at = None
                self._maybe_protected = False

    def _due(self) -> bool | None:
        """ProtectionEnabled of the PUT due now, or None: nothing to send."""
        if self._wait_for_beat:
            return None
        if self._busy:
            if self._expires_at is None or self._expires_at - self._monotonic() <= self._renew_window_s:
                return True
            return None
        return False if self._maybe_protected else None

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._due() is None and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    final_unprotect = self._maybe_protected
                    break
            self.apply()
        # One last try even after a failure: a protect that timed out may still have reached the agent.
        if final_unprotect:
            self._send(False)

    def _put(self, enabled: bool) -> bool:
        payload: dict[str, object] = {"ProtectionEnabled": enabled}
        if enabled:
            payload["ExpiresInMinutes"] = self._expires_in_minutes
        request = urllib.request.Request(
            self._url,
            data=json.dumps(payload).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=AGENT_TIMEOUT_S) as response:
                body = response.read()
            # The agent reports a refused update (throttling, missing permission) in the body of a 200.
            failure = _failure(body)
        except urllib.error.HTTPError as exc:
            failure = f"http {exc.code}: {exc.read()[:_ERROR_BODY_CHARS].decode(errors='replace')}"
        except (OSError, ValueError) as exc:  # refused, unreachable, timed out, reset
            failure = f"{type(exc).__name__}: {exc}"
        if failure is None:
            logs.log_event(LogEvent.TASK_PROTECTION_SET, level="debug", protectionEnabled=enabled)
            return True
        logs.log_event(LogEvent.TASK_PROTECTION_FAILED, level="warning", protectionEnabled=enabled, error=failure)
        metrics.emit({Metric.TASK_PROTECTION_FAILURES: (1.0, "Count")})
        return False


def _failure(body: bytes) -> str | None:
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return None  # a 2xx is success; the body is only read for a reported failure
    if isinstance(document, dict):
        for key in ("failure", "error"):
            if document.get(key):
                return f"{key}: {json.dumps(document[key])[:_ERROR_BODY_CHARS]}"
    return None
