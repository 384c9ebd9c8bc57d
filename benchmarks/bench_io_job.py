"""A benchmark-only job type that waits like a slow downstream call (200 ms by default), to measure the
worker's concurrency. Registered only where the benchmark loads this module into the runtime's processes."""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runtime.job_types.registry import JobContext, job_type

IO_WAIT_TYPE = "bench_io_wait"


class IoWaitParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wait_ms: int = Field(default=200, ge=0, le=10_000)


@job_type(IO_WAIT_TYPE, params=IoWaitParams)
def bench_io_wait(params: IoWaitParams, ctx: JobContext) -> dict[str, Any]:
    """Waits `wait_ms` without holding the GIL, as a blocking network call to a slow service would."""
    # The wait is the benchmark's model of I/O latency, not a stand-in for work the product should do.
    threading.Event().wait(params.wait_ms / 1000)
    return {"waitedMs": params.wait_ms, "attempt": ctx.attempt}
