"""Structured logs: one short JSON line per event on stdout, with the trace and job bound by `bind()`.

Stdlib `logging` (uvicorn, botocore) goes through the same formatter, so every stdout line is JSON.
Run uvicorn with `log_config=None` so that it keeps the handlers installed here.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, TypeVar

from runtime.domain.times import iso
from runtime.observability.names import LogEvent

if TYPE_CHECKING:
    from runtime.settings import Settings

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_LEVEL_NAMES = {number: name for name, number in _LEVELS.items()}

# traceId/jobId of the work at hand; a ContextVar so that asyncio tasks and copied contexts keep their own.
_bound: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("job_tickets_log_context", default={})  # noqa: B039 - never mutated, only replaced

_state_lock = threading.Lock()
_write_lock = threading.Lock()
_service = "job-tickets"
_min_level = logging.INFO
_stream: IO[str] | None = None  # None: whatever sys.stdout is at write time (pytest's capsys swaps it)

T = TypeVar("T")


def configure(settings: Settings | None = None, *, stream: IO[str] | None = None) -> None:
    """Sets service name and level from the settings and routes stdlib warnings/errors through JSON."""
    global _service, _min_level, _stream
    with _state_lock:
        if settings is not None:
            _service = settings.service_name
            _min_level = _parse_level(settings.log_level)
        _stream = stream
    _route_stdlib_logging()


def _parse_level(name: str) -> int:
    level = _LEVELS.get(name.strip().lower())
    if level is None:
        raise ValueError(f"unknown log level: {name!r}")
    return level


@contextlib.contextmanager
def bind(*, trace_id: str | None = None, job_id: str | None = None) -> Iterator[None]:
    """Adds traceId/jobId to every line logged inside the block (in this thread or task)."""
    current = dict(_bound.get())
    if trace_id is not None:
        current["traceId"] = trace_id
    if job_id is not None:
        current["jobId"] = job_id
    token = _bound.set(current)
    try:
        yield
    finally:
        _bound.reset(token)


def propagate(fn: Callable[..., T]) -> Callable[..., T]:
    """Wraps `fn` to run in a copy of the caller's context: hand this to a thread pool so the
    worker thread logs with the submitter's traceId/jobId (threads do not inherit contextvars)."""
    context = contextvars.copy_context()

    def run(*args: Any, **kwargs: Any) -> T:
        return context.run(fn, *args, **kwargs)

    return run


def log_event(event: LogEvent, level: str = "info", **fields: Any) -> None:
    """Writes one JSON line: ts, level, service, event, traceId, jobId (when bound), then `fields`."""
    if level not in _LEVELS:
        raise ValueError(f"unknown log level: {level!r}")
    if _LEVELS[level] < _min_level:
        return
    write_line(_line(level, event, fields))


def _line(level: str, event: str, fields: dict[str, Any]) -> str:
    record: dict[str, Any] = {"ts": _now(), "level": level, "service": _service, "event": event}
    record.update(_bound.get())
    for key, value in fields.items():
        if value is not None:
            record[key] = value
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)


def _now() -> str:
    return iso(datetime.now(UTC))


def write_line(line: str, stream: IO[str] | None = None) -> None:
    """Writes one line under the process-wide stdout lock shared with metrics (no interleaved lines)."""
    stream = stream or _stream or sys.stdout
    with _write_lock:
        stream.write(line + "\n")
        stream.flush()


class JsonFormatter(logging.Formatter):
    """Formats stdlib records as our JSON lines; the logger name goes into `logger`."""

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVEL_NAMES.get(record.levelno, "error" if record.levelno > logging.ERROR else "debug")
        fields: dict[str, Any] = {"logger": record.name, "message": record.getMessage()}
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            fields["errorType"] = type(exc).__name__
            if record.levelno >= logging.ERROR:
                fields["stack"] = "".join(traceback.format_exception(exc)).strip()[-2000:]
        return _line(level, LogEvent.LOG, fields)


class _StdoutHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_line(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def _route_stdlib_logging() -> None:
    # Third-party INFO chatter (uvicorn access lines, botocore) is not worth its bytes: warnings and up.
    level = max(logging.WARNING, _min_level)
    handler = _StdoutHandler(level=level)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        # Ours from an earlier configure(), and plain stream handlers (basicConfig) that would print non-JSON;
        # subclasses such as pytest's capture handlers stay.
        if isinstance(existing, _StdoutHandler) or type(existing) is logging.StreamHandler:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "botocore", "boto3", "urllib3", "werkzeug"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
        named.setLevel(level)
    logging.captureWarnings(True)
