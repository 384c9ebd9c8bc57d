"""The JobService the submit tests share: its limits, how it is built over fakes, and a default submit request."""

from __future__ import annotations

from typing import Any

from runtime.domain.job import Priority
from runtime.domain.schedule import DelayWindow
from runtime.domain.submit import JobService, SubmitRequest
from tests.unit.fakes import FakeClock, FakeQueue

TTL_S = 86_400
IN_FLIGHT_S = 5.0
RETENTION_S = 30 * 86_400
RETRY_REPUBLISH_AFTER_S = 10.0


def service_of(
    store: Any, queue: FakeQueue, clock: FakeClock, *, delay_window: DelayWindow | None = None
) -> JobService:
    return JobService(
        store,
        queue,
        clock,
        retention_s=RETENTION_S,
        idempotency_ttl_s=TTL_S,
        submit_in_flight_s=IN_FLIGHT_S,
        retry_republish_after_s=RETRY_REPUBLISH_AFTER_S,
        delay_window=delay_window,
    )


def request(key: str | None = "k1", **changes: Any) -> SubmitRequest:
    base: dict[str, Any] = {
        "job_type": "t",
        "priority": Priority.NORMAL,
        "params": {"a": 1},
        "metadata": {},
        "trace_id": "trace-1",
        "tenant": "acme",
        "idempotency_key": key,
    }
    base.update(changes)
    return SubmitRequest(**base)
