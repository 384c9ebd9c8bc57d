"""Holding the local all-in-one's worker, so that a job waits PENDING for as long as a test needs."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from tests.e2e.local_system import LocalSystem


@contextmanager
def paused_worker(system: LocalSystem) -> Iterator[None]:
    """The all-in-one's worker stopped (SIGSTOP) meanwhile, so a job waits PENDING as it would behind a backlog;
    it goes on afterwards (SIGCONT)."""
    system.wait_for_event("child_started", child="worker")
    worker_pid = [event for event in system.events("child_started") if event.get("child") == "worker"][-1]["pid"]
    os.kill(worker_pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(worker_pid, signal.SIGCONT)
