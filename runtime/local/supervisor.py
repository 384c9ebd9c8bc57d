"""Runs the all-in-one's child processes (API, worker, DLQ poller): starts them with the emulator's
environment, waits for the API's /readyz, forwards a stop request, and stops everything when one dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runtime.observability import logs

STOP_GRACE_S = 10.0  # after SIGTERM, how long a child may take before it is killed (typically 2-3 s)
READY_TIMEOUT_S = 90.0
POLL_S = 0.2


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: Sequence[str]


class ChildFailed(Exception):
    def __init__(self, name: str, returncode: int | None) -> None:
        super().__init__(f"{name} exited unexpectedly with code {returncode}")
        self.name = name
        self.returncode = returncode


def child_specs(*, api_port: int, python: str = sys.executable) -> list[ChildSpec]:
    return [
        ChildSpec("api", [python, "-m", "runtime.api", "--host", "127.0.0.1", "--port", str(api_port)]),
        ChildSpec("worker", [python, "-m", "runtime.worker"]),
        ChildSpec("dlq-poller", [python, "-m", "runtime.local.dlq_poller"]),
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
    def __init__(self, specs: Sequence[ChildSpec], env: Mapping[str, str], *, cwd: str | None = None) -> None:
        self._specs = list(specs)
        self._env = dict(env)
        self._cwd = cwd
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self.stop_requested = threading.Event()

    def start(self) -> None:
        for spec in self._specs:
            # A session of their own: a terminal's Ctrl-C reaches only this process, which then stops the
            # children in order instead of all of them racing each other.
            self._children[spec.name] = subprocess.Popen(
                list(spec.argv), env=self._env, cwd=self._cwd, start_new_session=True
            )
            logs.log_event("child_started", child=spec.name, pid=self._children[spec.name].pid)

    def check_children(self) -> None:
        """Raises ChildFailed for the first child that has exited."""
        for name, child in self._children.items():
            if child.poll() is not None:
                raise ChildFailed(name, child.returncode)

    def wait_ready(self, url: str, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Waits until `url` answers 200 while every child lives."""
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
        """Returns when a stop is requested; raises ChildFailed when a child exits first."""
        while not self.stop_requested.wait(POLL_S):
            self.check_children()

    def stop(self, grace_s: float = STOP_GRACE_S) -> list[str]:
        """SIGTERM to every live child, then SIGKILL after `grace_s`; returns the names that had to be killed."""
        for child in self._children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        killed = []
        for name, child in self._children.items():
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                killed.append(name)
        for name, child in self._children.items():
            logs.log_event("child_stopped", child=name, exitCode=child.returncode, killed=name in killed or None)
        return killed


def install_stop_handlers(supervisor: Supervisor) -> None:
    def on_signal(signum: int, _frame: object) -> None:
        supervisor.stop_requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
