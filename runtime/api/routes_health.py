"""/healthz (the process lives) and /readyz (the job store and the queue answer, within a bound of their own)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from runtime.api.deps import ReadinessDep
from runtime.api.schemas import HealthOut, ReadyOut
from runtime.domain.ports import JobQueue, JobStore
from runtime.observability import aws_calls, log_event
from runtime.observability.names import LogEvent

READY_CACHE_S = 1.0
# Never shed nor cut by the request deadline: the probes bound their own time.
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})

router = APIRouter(tags=["health"])


class ReadinessProbe:
    """Pings the store and the queue at most once per `cache_s`, so frequent probes stay cheap, and answers within
    `timeout_s` whatever the dependencies do: the pings run on a thread of the probe's own (never waiting for the
    request threads), and a dependency that has not answered by then is not ready. A ping still running when the
    next check comes is waited for again rather than doubled, so a frozen dependency holds one thread at most."""

    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        *,
        timeout_s: float,
        cache_s: float = READY_CACHE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._queue = queue
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._reason: str | None = None
        self._probe: Future[str | None] | None = None
        self._pinging = "job store"  # the dependency the running probe waits for (the store is pinged first)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readiness")

    def check(self) -> str | None:
        """None when ready, else the reason; blocks at most `timeout_s`."""
        probe = self._current()
        if isinstance(probe, Future):
            try:
                return self._record(probe.result(timeout=self._timeout_s))
            except TimeoutError:
                return self._record(f"{self._pinging} is not answering")
        return probe

    async def check_async(self) -> str | None:
        """check() without holding a thread of the caller's while it waits."""
        probe = self._current()
        if isinstance(probe, Future):
            try:
                reason = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(probe)), self._timeout_s)
            except TimeoutError:
                reason = f"{self._pinging} is not answering"
            return self._record(reason)
        return probe

    def _current(self) -> Future[str | None] | str | None:
        """The cached answer while fresh, else the probe to wait for (the running one, or a new one)."""
        with self._lock:
            if self._checked_at is not None and self._monotonic() - self._checked_at < self._cache_s:
                return self._reason
            if self._probe is None or self._probe.done():
                # In a copy of the caller's context: a failure is logged with the trace id of the probe that found it.
                self._probe = self._executor.submit(contextvars.copy_context().run, self._ping_all)
            return self._probe

    def _record(self, reason: str | None) -> str | None:
        with self._lock:
            self._reason = reason
            self._checked_at = self._monotonic()
        return reason

    def _ping_all(self) -> str | None:
        # The reason names the dependency only: the exception's text (endpoints, table and queue names) goes to
        # the logs, with the trace id of the probe that found it.
        with aws_calls.category("health"):
            for name, ping in (("job store", self._store.ping), ("queue", self._queue.ping)):
                self._pinging = name
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
async def healthz() -> dict[str, str]:  # async: answered on the event loop, never waiting for a request thread
    return {"status": "ok"}


# HEAD for probes and monitors that only look at the status; the server sends no body for HEAD.
router.head("/healthz", include_in_schema=False)(healthz)


@router.get(
    "/readyz",
    summary="Readiness",
    response_model=ReadyOut,
    response_model_exclude_none=True,
    description="200 when the job store and the queue answer (checked at most once a second), else 503. Answers "
    "within 2 s whatever the dependencies do: one that does not answer in time is not ready.",
    responses={503: {"model": ReadyOut, "description": "Not ready; `reason` says which dependency failed."}},
)
async def readyz(readiness: ReadinessDep) -> JSONResponse:
    reason = await readiness.check_async()
    if reason is None:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)


router.head("/readyz", include_in_schema=False)(readyz)
