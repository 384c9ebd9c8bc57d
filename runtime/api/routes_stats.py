"""GET /api/v1/stats: queue depth and the caller's jobs finished in the last hour (what the web console shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from runtime.api.auth import ReaderDep
from runtime.api.deps import StatsDep
from runtime.api.errors import ApiError
from runtime.api.route_docs import AUTH_RESPONSES, TRACE_HEADER_DOC, error_doc, trace_id_header
from runtime.domain.job import Priority
from runtime.domain.ports import QueueUnavailable
from runtime.domain.stats import CACHE_S, CREATED_LOOKBACK, FINISHED_STATUSES, MAX_EXAMINED, WINDOW, Stats
from runtime.domain.times import iso
from runtime.observability import aws_calls, log_event
from runtime.observability.names import LogEvent

STATS_PATH = "/api/v1/stats"
QUEUE_RETRY_AFTER_S = 2


class QueueDepthOut(BaseModel):
    priority: Priority
    visible: int = Field(description="messages waiting for a worker (approximate, as SQS counts them)")
    inFlight: int = Field(description="messages a worker received and has not finished (approximate)")
    delayed: int = Field(description="messages sent with a delay that has not passed yet (approximate)")


class FinishedOut(BaseModel):
    windowSeconds: int = Field(description=f"always {int(WINDOW.total_seconds())}")
    since: datetime = Field(description="the start of the window")
    counts: dict[str, int] = Field(
        description="jobs that reached each terminal status in the window: " + ", ".join(FINISHED_STATUSES)
    )
    complete: bool = Field(description="false when more jobs were in range than one read examines: counts are a floor")
    readAt: datetime


class StatsOut(BaseModel):
    """Queue depth (the whole service's, per priority) and the caller's jobs finished in the last hour."""

    queues: list[QueueDepthOut] = Field(description="highest priority first")
    queuesReadAt: datetime
    lastHour: FinishedOut


STATS_DESCRIPTION = f"""What the web console (`/console`) shows beside the job list. Needs `jobs:read`.

- `queues`: each priority queue's approximate depth as SQS reports it (`visible` waiting, `inFlight` being worked
  on, `delayed` not yet due). The queues are shared by all tenants: these are the service's figures, the work
  ahead of a new job, and say nothing about other tenants' jobs beyond that.
- `lastHour`: the caller's jobs that reached `SUCCEEDED`, `FAILED_FINAL` or `CANCELED` in the last
  {int(WINDOW.total_seconds())} s. One indexed Query on the caller's own partition, newest first, reading at most
  {MAX_EXAMINED} jobs created within the last {int((WINDOW + CREATED_LOOKBACK).total_seconds() // 3600)} h (a job
  created earlier than that is not counted); `complete` is false when the Query stopped before the end of that range
  (the counts are then a floor).

Both parts are cached per API process for {CACHE_S:g} s (`queuesReadAt`, `lastHour.readAt` say when they were
read), so polling this more often costs nothing more. A queue or store that does not answer: `503`."""

router = APIRouter(tags=["stats"], dependencies=[Depends(trace_id_header)], responses=AUTH_RESPONSES)


def stats_document(stats: Stats) -> dict[str, Any]:
    finished = stats.finished
    return {
        "queues": [
            {"priority": d.priority.value, "visible": d.visible, "inFlight": d.in_flight, "delayed": d.delayed}
            for d in stats.queues
        ],
        "queuesReadAt": iso(stats.queues_read_at),
        "lastHour": {
            "windowSeconds": int(WINDOW.total_seconds()),
            "since": iso(finished.since),
            "counts": {status.value: finished.by_status.get(status, 0) for status in FINISHED_STATUSES},
            "complete": finished.complete,
            "readAt": iso(stats.finished_read_at),
        },
    }


@router.get(
    STATS_PATH,
    name="get_stats",
    summary="Queue depth and last hour's throughput",
    response_model=StatsOut,
    description=STATS_DESCRIPTION,
    responses={
        200: {"description": "The figures.", "headers": {"X-Trace-Id": TRACE_HEADER_DOC}},
        503: error_doc("`queue_unavailable` or `job_store_unavailable`, with `Retry-After`."),
    },
)
def get_stats(principal: ReaderDep, stats: StatsDep) -> JSONResponse:
    try:
        with aws_calls.category("poll"):
            figures = stats.read(principal.tenant)
    except QueueUnavailable as exc:
        log_event(LogEvent.STATS_UNAVAILABLE, level="error", reason=str(exc))
        raise ApiError(
            503,
            "queue_unavailable",
            "queue depth cannot be read right now; retry later",
            headers={"Retry-After": str(QUEUE_RETRY_AFTER_S)},
        ) from None
    return JSONResponse(stats_document(figures))
