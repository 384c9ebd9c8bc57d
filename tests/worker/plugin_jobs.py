"""Test-only job types, loaded by the worker through JOBS_WORKER_PLUGINS=tests.worker.plugin_jobs: each run
appends "start"/"done" lines to a run log file, so tests see exactly how often a handler ran and finished."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from runtime.job_types.registry import JobCanceled, JobContext, TransientJobError, job_type

# How often a held job looks at its gate file; holding stands in for long work in these tests only.
POLL_S = 0.05


class SlowParams(BaseModel):
    run_log: str = Field(min_length=1)
    hold_s: float = Field(default=0.0, ge=0, le=120)
    gate: str | None = None  # when set, the run also waits until this file exists
    fail_attempts: int = Field(default=0, ge=0)  # attempts 1..fail_attempts raise a transient error


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


def read_runs(path: str | Path) -> list[tuple[str, str, int]]:
    """[(event, pid, attempt)] from a run log; missing file = no runs."""
    file = Path(path)
    if not file.exists():
        return []
    runs = []
    for line in file.read_text(encoding="utf-8").splitlines():
        event, pid, attempt = line.split()
        runs.append((event, pid, int(attempt)))
    return runs


@job_type("test_slow", params=SlowParams)
def slow_job(params: SlowParams, ctx: JobContext) -> dict[str, Any]:
    """Records its run, holds for hold_s (and until the gate file exists), then records completion."""
    _append(params.run_log, f"start {os.getpid()} {ctx.attempt}")
    until = time.monotonic() + params.hold_s
    while time.monotonic() < until or (params.gate is not None and not os.path.exists(params.gate)):
        time.sleep(POLL_S)
    if ctx.attempt <= params.fail_attempts:
        _append(params.run_log, f"failed {os.getpid()} {ctx.attempt}")
        raise TransientJobError("test_transient", f"attempt {ctx.attempt} fails on purpose")
    _append(params.run_log, f"done {os.getpid()} {ctx.attempt}")
    return {"pid": os.getpid(), "attempt": ctx.attempt}


class BrokenParams(BaseModel):
    key: str = Field(min_length=1)


@job_type("test_broken", params=BrokenParams)
def broken_job(params: BrokenParams, ctx: JobContext) -> dict[str, Any]:
    """Fails as a buggy handler does: an unexpected exception whose text names an internal detail."""
    raise KeyError(params.key)


class CancelableParams(BaseModel):
    run_log: str = Field(min_length=1)
    hold_s: float = Field(default=60.0, ge=0, le=120)  # the work it does unless canceled first
    on_cancel: Literal["raise", "return"] = "raise"  # how it stops: JobCanceled, or returning what it has


@job_type("test_cancelable", params=CancelableParams)
def cancelable_job(params: CancelableParams, ctx: JobContext) -> dict[str, Any]:
    """Works in POLL_S units for hold_s, checking ctx.cancelled between units; records "canceled" or "done"."""
    _append(params.run_log, f"start {os.getpid()} {ctx.attempt}")
    until = time.monotonic() + params.hold_s
    units = 0
    while time.monotonic() < until:
        if ctx.cancelled:
            _append(params.run_log, f"canceled {os.getpid()} {ctx.attempt}")
            if params.on_cancel == "raise":
                raise JobCanceled()
            return {"units": units, "stopped": True}
        ctx.cancel_flag.wait(min(POLL_S, max(0.0, until - time.monotonic())))
        units += 1
    _append(params.run_log, f"done {os.getpid()} {ctx.attempt}")
    return {"units": units, "stopped": False}


class ProgressParams(BaseModel):
    gate: str = Field(min_length=1)  # it reports half way, then waits for this file before finishing
    steps: int = Field(default=50, ge=1, le=1000)


@job_type("test_progress", params=ProgressParams)
def progress_job(params: ProgressParams, ctx: JobContext) -> dict[str, Any]:
    """Reports progress many times up to half way, waits for its gate file, then reports 1.0 and finishes."""
    for step in range(1, params.steps + 1):
        ctx.report_progress(0.5 * step / params.steps, f"step {step} of {params.steps}")
    while not os.path.exists(params.gate):
        time.sleep(POLL_S)
    ctx.report_progress(1.0, "all done")
    return {"steps": params.steps}
