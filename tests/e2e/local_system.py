"""Runs `python -m runtime.local` as a subprocess for end-to-end tests and drives it as a client would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx

from tests.conftest import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
# The first start synthesizes the CDK stack (tens of seconds on a busy machine); later starts use the cache.
READY_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 20.0
TERMINAL = {"SUCCEEDED", "FAILED_FINAL"}


class LocalSystem:
    def __init__(self, *, extra_env: Mapping[str, str] | None = None) -> None:
        self.api_port = free_port()
        self.aws_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.lines: list[str] = []
        self.ready: dict[str, str] = {}
        self._ready_event = threading.Event()
        self._lock = threading.Lock()
        env = {**os.environ, **(extra_env or {})}
        env.pop("JOBS_SSM_PATH", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runtime.local", "--api-port", str(self.api_port), "--aws-port", str(self.aws_port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))
            if line.startswith("job-tickets local ready:"):
                self.ready = dict(part.split("=", 1) for part in line.split(":", 1)[1].split())
                self._ready_event.set()
        self._ready_event.set()  # the process ended: wake a waiter so it can report why

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        if not self._ready_event.wait(timeout_s) or not self.ready:
            self.stop()
            raise RuntimeError(f"runtime.local did not get ready; last output:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        with self._lock:
            return "\n".join(self.lines[-n:])

    def events(self, name: str) -> list[dict[str, Any]]:
        """The JSON log lines with event == `name` (every child writes to this process's stdout)."""
        with self._lock:
            lines = list(self.lines)
        found = []
        for line in lines:
            if line.startswith("{") and f'"{name}"' in line:
                record = json.loads(line)
                if record.get("event") == name:
                    found.append(record)
        return found

    def wait_for_event(self, name: str, timeout_s: float = 10.0, **fields: Any) -> dict[str, Any]:
        """The first log line of event `name` with these field values; the pipe from the children lags a
        little behind their HTTP answers, so wait for it (bounded)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for record in self.events(name):
                if all(record.get(key) == value for key, value in fields.items()):
                    return record
            if time.monotonic() > deadline:
                raise AssertionError(f"no {name} log line with {fields}; last output:\n{self.tail()}")
            time.sleep(0.05)

    @property
    def aws_url(self) -> str:
        return self.ready["aws"]

    @property
    def bucket(self) -> str:
        return self.ready["bucket"]

    def s3(self) -> Any:
        return boto3.client("s3", endpoint_url=self.aws_url, region_name="us-east-1")

    @property
    def api_key(self) -> str:
        """The key the all-in-one made for tenant `local` (both scopes) and printed on its ready line."""
        return self.ready["api-key"]

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=30, headers=self.auth_headers)

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to runtime.local only, as a terminal sends it; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            self.interrupt()
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def running_system(extra_env: Mapping[str, str] | None = None) -> Iterator[LocalSystem]:
    """A started all-in-one, ready for requests, stopped on the way out (also when the test fails)."""
    local = LocalSystem(extra_env=extra_env)
    try:
        local.wait_ready()
        yield local
    finally:
        local.stop()


def wait_for_status(
    client: httpx.Client, job_id: str, statuses: set[str] = TERMINAL, timeout_s: float = 60.0
) -> dict[str, Any]:
    """Polls as a client would until the job reaches one of `statuses`; returns the job."""
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in statuses:
            return job
        time.sleep(0.2)  # a client's poll interval; the worker does the work meanwhile
    raise AssertionError(f"job {job_id} still {job.get('status')} after {timeout_s} s: {job}")
