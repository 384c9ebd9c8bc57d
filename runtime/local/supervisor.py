"""Runs the all-in-one's child processes (API, worker, DLQ poller, callback consumer): starts them with the emulator's
environment, waits for the API's /readyz, restarts a child that exits (with backoff, as a process manager
would), and stops everything on a stop request or when a child keeps crashing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from runtime.observability import logs
from runtime.observability.names import LogEvent

STOP_GRACE_S = 10.0  # after SIGTERM, how long a child may take before it is killed (typically 2-3 s)
READY_TIMEOUT_S = 90.0
POLL_S = 0.2


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: Sequence[str]


@dataclass(frozen=True)
class RestartPolicy:
    """A child that exits is started again after base * 2^(n-1) s (at most max_s), n being its exits within the
    window; at `max_crashes` exits within `window_s` it is crash-looping and the supervisor gives up."""

    max_crashes: int = 5
    window_s: float = 60.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 10.0

    def delay_s(self, recent_crashes: int) -> float:
        return float(min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, recent_crashes - 1)))


class ChildFailed(Exception):
    def __init__(self, name: str, returncode: int | None, crashes: int, window_s: float) -> None:
        super().__init__(
            f"{name} keeps crashing: it exited {crashes} times within {window_s:g} s (last exit code {returncode})"
        )
        self.name = name
        self.returncode = returncode


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes]
    crashes: deque[float] = field(default_factory=deque)  # monotonic times of its recent exits
    restart_at: float | None = None  # set while it waits out its backoff


def child_specs(*, api_port: int, python: str = sys.executable) -> list[ChildSpec]:
    return [
        ChildSpec("api", [python, "-m", "runtime.api", "--host", "127.0.0.1", "--port", str(api_port)]),
        ChildSpec("worker", [python, "-m", "runtime.worker"]),
        ChildSpec("dlq-poller", [python, "-m", "runtime.local.dlq_poller"]),
        ChildSpec("callback-consumer", [python, "-m", "runtime.callbacks.consumer"]),
    ]


def child_environment(
    parent: Mapping[str, str], *, endpoint_url: str, ssm_path: str, region: str = "us-east-1"
) -> dict[str, str]:
    """The parent's environment plus what points the children at the emulator (which wins)."""
    env = dict(parent)
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "JOBS_SSM_PATH": ssm_path,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    # A local stop should take seconds, not the production drain deadline (unless asked otherwise).
    env.setdefault("JOBS_SHUTDOWN_DEADLINE_S", "3")
    return env


class Supervisor:
    def __init__(
        self,
        specs: Sequence[ChildSpec],
        env: Mapping[str, str],
        *,
        cwd: str | None = None,
        restart: RestartPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._specs = list(specs)
        self._env = dict(env)
        self._cwd = cwd
        self._restart = restart or RestartPolicy()
        self._monotonic = monotonic
        self._children: dict[str, _Child] = {}
        self.stop_requested = threading.Event()

    def start(self) -> None:
        for spec in self._specs:
            self._children[spec.name] = _Child(spec, self._spawn(spec))

    def _spawn(self, spec: ChildSpec) -> subprocess.Popen[bytes]:
        # A session of its own: a terminal's Ctrl-C reaches only this process, which then stops the children
        # in order instead of all of them racing each other.
        process = subprocess.Popen(list(spec.argv), env=self._env, cwd=self._cwd, start_new_session=True)
        logs.log_event(LogEvent.CHILD_STARTED, child=spec.name, pid=process.pid)
        return process

    def pid(self, name: str) -> int:
        return self._children[name].process.pid

    def check_children(self) -> None:
        """Restarts the children that exited, once their backoff has passed; raises ChildFailed for a child
        that exited `max_crashes` times within the policy's window."""
        now = self._monotonic()
        for name, child in self._children.items():
            if child.restart_at is not None:
                if now >= child.restart_at and not self.stop_requested.is_set():
                    child.restart_at = None
                    child.process = self._spawn(child.spec)
                continue
            returncode = child.process.poll()
            if returncode is None:
                continue
            child.crashes.append(now)
            while child.crashes and now - child.crashes[0] > self._restart.window_s:
                child.crashes.popleft()
            if len(child.crashes) >= self._restart.max_crashes:
                logs.log_event(
                    LogEvent.CHILD_CRASH_LOOPING,
                    level="error",
                    child=name,
                    exitCode=returncode,
                    crashes=len(child.crashes),
                    windowS=self._restart.window_s,
                )
                raise ChildFailed(name, returncode, len(child.crashes), self._restart.window_s)
            delay = self._restart.delay_s(len(child.crashes))
            child.restart_at = now + delay
            logs.log_event(
                LogEvent.CHILD_EXITED,
                level="warning",
                child=name,
                pid=child.process.pid,
                exitCode=returncode,
                restartInS=delay,
                recentCrashes=len(child.crashes),
            )

    def wait_ready(self, url: str, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Waits until `url` answers 200, restarting children that exit meanwhile (see check_children)."""
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while not self.stop_requested.is_set():
            self.check_children()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
                    last = f"status {response.status}"
            except urllib.error.HTTPError as exc:
                last = f"status {exc.code}: {exc.read()[:200].decode(errors='replace')}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout_s:.0f} s: {url} -> {last}")
            self.stop_requested.wait(POLL_S)

    def run_until_stopped(self) -> None:
        """Returns when a stop is requested; raises ChildFailed when a child keeps crashing first."""
        while not self.stop_requested.wait(POLL_S):
            self.check_children()

    def stop(self, grace_s: float = STOP_GRACE_S) -> list[str]:
        """SIGTERM to every live child, then SIGKILL after `grace_s`; returns the names that had to be killed."""
        processes = {name: child.process for name, child in self._children.items()}
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        killed = []
        for name, process in processes.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                killed.append(name)
        for name, process in processes.items():
            logs.log_event(
                LogEvent.CHILD_STOPPED, child=name, exitCode=process.returncode, killed=name in killed or None
            )
        return killed


def install_stop_handlers(supervisor: Supervisor) -> None:
    def on_signal(signum: int, _frame: object) -> None:
        supervisor.stop_requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
