"""Waiting in tests for something another thread or process makes true."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

WAIT_LIMIT_S = 60.0  # a generous limit for conditions to become true, never an assertion on timing
POLL_S = 0.1


def wait_for(what: str, condition: Callable[[], object], limit_s: float = WAIT_LIMIT_S) -> None:
    """Returns once `condition()` is truthy; fails the test naming `what` after `limit_s`."""
    ends = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > ends:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(POLL_S)
