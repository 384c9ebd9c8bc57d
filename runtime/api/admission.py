"""Admission control of the API process: how many requests it handles at once, and how long each may take.

A store or queue that stalls must not turn into requests that hang for the whole stall, nor into an unbounded
queue of requests waiting for a thread. So: at most `max_in_flight` requests are handled at once (the excess is
answered `503 overloaded` with Retry-After at once), and a request that has not begun its answer when its deadline
passes is answered `503 deadline_exceeded` with Retry-After. The handling of such a request is not interrupted (a
thread blocked in the SDK cannot be): it goes on until the SDK's own timeouts end it, its later answer is dropped,
and it keeps its in-flight slot until then, so abandoned work counts against the bound too. Whatever it wrote is
complete on its own: a job it stored is published by it, or by the republisher, and a retry of the submit with the
same Idempotency-Key answers with that job.

A route that can answer in part reads its deadline (`deadline_of`) and stops starting work in time: the batch
submit answers its unstarted jobs `503 deadline_exceeded` one by one, so this whole-request 503 is its last resort.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping

from starlette.requests import HTTPConnection

from runtime.api.errors import DEADLINE_EXCEEDED, STORE_RETRY_AFTER_S, error_response
from runtime.api.middleware import ASGIApp, HttpMiddleware, Message, Receive, Scope, Send
from runtime.observability import log_event
from runtime.observability.names import LogEvent

# A refused request asks to come back after this long: the requests in flight end within their deadline.
OVERLOADED_RETRY_AFTER_S = 1
# The request's deadline (time.monotonic()) in its scope's state, for the route.
_DEADLINE_STATE = "admission_deadline"


def deadline_of(connection: HTTPConnection) -> float | None:
    """When (time.monotonic()) the request is answered 503 unless it has begun its answer; None if not admitted
    here (an exempt path, or an app without this middleware)."""
    deadline = connection.scope.get("state", {}).get(_DEADLINE_STATE)
    return float(deadline) if deadline is not None else None


class AdmissionMiddleware(HttpMiddleware):
    """Sheds requests past `max_in_flight` and answers 503 at `deadline_s` (`deadline_s_by_path` for some paths);
    paths in `exempt` (the health probes, which bound their own time) pass untouched."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        deadline_s: float,
        deadline_s_by_path: Mapping[str, float] | None = None,
        exempt: Collection[str] = (),
    ) -> None:
        super().__init__(app)
        self.max_in_flight = max_in_flight
        self.deadline_s = deadline_s
        self.deadline_s_by_path = dict(deadline_s_by_path or {})
        self.exempt = frozenset(exempt)
        # Only the event loop's thread touches it (requests and their done callbacks run there).
        self.in_flight = 0

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if path in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            log_event(LogEvent.HTTP_REQUEST_SHED, level="warning", path=path, inFlight=self.in_flight)
            response = error_response(
                503,
                "overloaded",
                "the service is handling as many requests as it can; retry later",
                {"Retry-After": str(OVERLOADED_RETRY_AFTER_S)},
            )
            await response(scope, receive, send)
            return
        deadline_s = self.deadline_s_by_path.get(path, self.deadline_s)
        scope.setdefault("state", {})[_DEADLINE_STATE] = time.monotonic() + deadline_s
        started = abandoned = False

        async def send_unless_abandoned(message: Message) -> None:
            nonlocal started
            if abandoned:  # the caller already has its 503
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        self.in_flight += 1
        # The task runs in a copy of this context: the request's trace id and log fields go with it.
        handling = asyncio.ensure_future(self.app(scope, receive, send_unless_abandoned))
        handling.add_done_callback(self._release)
        done, _ = await asyncio.wait({handling}, timeout=deadline_s)
        if done or started:
            await handling  # its answer is under way: let it finish (an exception reaches the outer middleware)
            return
        abandoned = True
        handling.add_done_callback(_log_failure)
        log_event(LogEvent.HTTP_DEADLINE_EXCEEDED, level="warning", path=path, deadlineS=deadline_s)
        response = error_response(
            503,
            DEADLINE_EXCEEDED,
            f"the request did not complete within {deadline_s:g} s because a dependency is slow; it may still take "
            "effect: retry it (a submit with the same Idempotency-Key answers with the job it created)",
            {"Retry-After": str(STORE_RETRY_AFTER_S)},
        )
        await response(scope, receive, send)

    def _release(self, _: asyncio.Future[None]) -> None:
        self.in_flight -= 1


def _log_failure(handling: asyncio.Future[None]) -> None:
    # Nobody awaits an abandoned request: its exception (a bug, as answers are made by the error handlers) is logged.
    if handling.cancelled():
        return
    exc = handling.exception()
    if exc is not None:
        log_event(LogEvent.HTTP_UNHANDLED_ERROR, level="error", errorType=type(exc).__name__, message=str(exc)[:500])
