"""/healthz (the process lives) and /readyz (the job store and the queue answer)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from runtime.api.deps import ReadinessDep
from runtime.api.schemas import HealthOut, ReadyOut
from runtime.domain.ports import JobQueue, JobStore
from runtime.observability import aws_calls, log_event
from runtime.observability.names import LogEvent

READY_CACHE_S = 1.0

router = APIRouter(tags=["health"])


class ReadinessProbe:
    """Pings the store and the queue at most once per `cache_s`, so frequent probes stay cheap."""

    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        *,
        cache_s: float = READY_CACHE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._queue = queue
        self._cache_s = cache_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._reason: str | None = None

    def check(self) -> str | None:
        with self._lock:
            now = self._monotonic()
            if self._checked_at is not None and now - self._checked_at < self._cache_s:
                return self._reason
            self._reason = self._probe()
            self._checked_at = self._monotonic()
            return self._reason

    def _probe(self) -> str | None:
        # The reason names the dependency only: the exception's text (endpoints, table and queue names) goes to
        # the logs, with the trace id of the probe that found it.
        with aws_calls.category("health"):
            for name, ping in (("job store", self._store.ping), ("queue", self._queue.ping)):
                try:
                    ping()
                except Exception as exc:  # noqa: BLE001 - any failure means not ready
                    log_event(
                        LogEvent.READINESS_FAILED,
                        level="warning",
                        dependency=name,
                        errorType=type(exc).__name__,
                        message=str(exc)[:500],
                    )
                    return f"{name} is not answering"
        return None


@router.get("/healthz", summary="Liveness", response_model=HealthOut)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


# HEAD for probes and monitors that only look at the status; the server sends no body for HEAD.
router.head("/healthz", include_in_schema=False)(healthz)


@router.get(
    "/readyz",
    summary="Readiness",
    response_model=ReadyOut,
    response_model_exclude_none=True,
    description="200 when the job store and the queue answer (checked at most once a second), else 503.",
    responses={503: {"model": ReadyOut, "description": "Not ready; `reason` says which dependency failed."}},
)
def readyz(readiness: ReadinessDep) -> JSONResponse:
    reason = readiness.check()
    if reason is None:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)


router.head("/readyz", include_in_schema=False)(readyz)
