"""Counts AWS requests by (category, service, operation) for the cost benchmark.

`install(client)` on every boto3 client (runtime/aws_clients.py does it); `category("submit")` names who
calls. With the setting JOBS_AWS_CALLS_FILE, `configure()` writes the counts there as JSON every second and at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CATEGORIES = frozenset({"submit", "poll", "auth", "worker", "background", "dlq", "callbacks", "health", "other"})
DUMP_INTERVAL_S = 1.0

_category: contextvars.ContextVar[str] = contextvars.ContextVar("aws_call_category", default="other")
_lock = threading.Lock()
_counts: dict[tuple[str, str, str], int] = {}
_dumper_started = False


@contextlib.contextmanager
def category(name: str) -> Iterator[None]:
    """AWS calls made inside the block (this thread or task) count under `name`."""
    if name not in CATEGORIES:
        raise ValueError(f"unknown aws call category: {name!r}")
    token = _category.set(name)
    try:
        yield
    finally:
        _category.reset(token)


def current_category() -> str:
    return _category.get()


def _count_call(model: Any = None, **_: Any) -> None:
    key = (_category.get(), model.service_model.service_name, model.name)
    with _lock:
        _counts[key] = _counts.get(key, 0) + 1


def install(client: Any) -> Any:
    """Counts every API call of `client` (once per call, retries included in that one call). Returns it."""
    # unique_id: installing twice on one client must not count twice.
    client.meta.events.register("before-call.*.*", _count_call, unique_id="job-tickets-aws-calls")
    return client


def record(service: str, operation: str) -> None:
    """Counts a call made without a boto3 client (or in tests)."""
    with _lock:
        key = (_category.get(), service, operation)
        _counts[key] = _counts.get(key, 0) + 1


def snapshot() -> dict[str, dict[str, int]]:
    """{category: {"service.Operation": count}}."""
    with _lock:
        items = list(_counts.items())
    result: dict[str, dict[str, int]] = {}
    for (name, service, operation), count in sorted(items):
        result.setdefault(name, {})[f"{service}.{operation}"] = count
    return result


def reset() -> None:
    with _lock:
        _counts.clear()


def write_snapshot(path: str | os.PathLike[str]) -> None:
    """Atomically replaces `path` with the current snapshot (tmp file + rename: readers never see half)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(snapshot(), sort_keys=True), encoding="utf-8")
    os.replace(tmp, target)


def start_file_dump(path: str, interval_s: float = DUMP_INTERVAL_S) -> None:
    """Starts (once per process) the daemon thread that writes the snapshot to `path`; `{pid}` in the
    path is replaced by the process id, so that several processes can share one setting."""
    global _dumper_started
    with _lock:
        if _dumper_started:
            return
        _dumper_started = True
    target = path.replace("{pid}", str(os.getpid()))
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            with contextlib.suppress(OSError):
                write_snapshot(target)

    def at_exit() -> None:
        stop.set()
        with contextlib.suppress(OSError):
            write_snapshot(target)

    threading.Thread(target=loop, name="aws-calls-dump", daemon=True).start()
    atexit.register(at_exit)
