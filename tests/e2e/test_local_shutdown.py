"""Ctrl-C stops the local all-in-one and every child process, with exit code 0."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.e2e.local_system import running_system

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigint_stops_everything_with_exit_code_0() -> None:
    with running_system() as local:
        assert httpx.get(f"{local.api_url}/readyz", timeout=10).json() == {"status": "ready"}
        children = {event["child"]: event["pid"] for event in local.events("child_started")}
        assert set(children) == {"api", "worker", "dlq-poller", "callback-consumer"}

        # interrupt() waits a bounded time (STOP_TIMEOUT_S) and raises if the process is still running.
        assert local.interrupt() == 0
        stopped = {event["child"]: event for event in local.events("child_stopped")}
        assert set(stopped) == set(children)
        assert not any(event.get("killed") for event in stopped.values()), local.tail()
        assert not [name for name, pid in children.items() if alive(pid)]
