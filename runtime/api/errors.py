"""The error model: every error answer is {"error": code, "detail": sentence}, never a stack trace."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from runtime.domain.job import Job
from runtime.domain.listing import InvalidCursor
from runtime.domain.ports import JobStoreUnavailable
from runtime.domain.schedule import ScheduleRejected
from runtime.domain.submit import (
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    JobNotCancelable,
    JobNotFound,
    JobNotRetryable,
    SubmitNotStarted,
)
from runtime.observability import log_event
from runtime.observability.names import LogEvent

STORE_RETRY_AFTER_S = 2
# A dependency too slow for the request's deadline: the whole request's answer (runtime/api/admission.py), or one
# batch item's whose write was never started.
DEADLINE_EXCEEDED = "deadline_exceeded"
NOT_STARTED_DETAIL = (
    "the batch's deadline came before this job's write could start because a dependency is slow; "
    "it was not created: retry it"
)


class ApiError(Exception):
    """An answer other than success, raised anywhere in a route."""

    def __init__(
        self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def error_response(
    status_code: int, code: str, detail: str, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "detail": detail}
    body.update({key: value for key, value in (extra or {}).items() if value is not None})
    return JSONResponse(body, status_code=status_code, headers=headers)


def field_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """pydantic errors as [{"field": "params.source", "message": "field required"}], bad values shown."""
    problems = []
    for error in exc.errors(include_url=False):
        parts = [str(part) for part in error.get("loc", ())]
        field = ".".join([prefix, *parts] if prefix else parts) or (prefix or "body")
        message = str(error.get("msg", "invalid"))
        message = message[:1].lower() + message[1:]  # lowercase house style, bad values shown as they are
        if error.get("type") not in ("missing", "extra_forbidden") and "input" in error:
            shown = repr(error["input"])
            if shown not in message:  # our own validators already name the bad value
                message += f", got {shown if len(shown) <= 60 else shown[:57] + '...'}"
            message = message.removeprefix("value error, ")
        problems.append({"field": field, "message": message})
    return problems


def validation_error(problems: list[dict[str, str]]) -> ApiError:
    first = problems[0]
    detail = f"{first['field']}: {first['message']}"
    if len(problems) > 1:
        detail += f" (and {len(problems) - 1} more)"
    return ApiError(422, "validation_error", detail, errors=problems)


STORE_UNAVAILABLE_DETAIL = "the job store is not answering; nothing was changed"


def submit_error(exc: Exception, *, key_field: str = "Idempotency-Key") -> ApiError | None:
    """The answer to a submit's domain exception (None for anything else), for the single route's handlers and
    for each item of a batch alike; `key_field` names where the idempotency key came from."""
    if isinstance(exc, IdempotencyKeyReused):
        return ApiError(
            422,
            "idempotency_key_reused",
            f"{key_field}: this key was already used for a request with a different body (job {exc.job.job_id})",
        )
    if isinstance(exc, IdempotencyKeyInFlight):
        return ApiError(
            409,
            "idempotency_key_in_flight",
            f"{key_field}: the first request with this key (job {exc.job.job_id}) is still being handled; retry later",
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    if isinstance(exc, JobStoreUnavailable):
        return ApiError(
            503, "job_store_unavailable", STORE_UNAVAILABLE_DETAIL, headers={"Retry-After": str(STORE_RETRY_AFTER_S)}
        )
    if isinstance(exc, SubmitNotStarted):
        return ApiError(503, DEADLINE_EXCEEDED, NOT_STARTED_DETAIL, headers={"Retry-After": str(STORE_RETRY_AFTER_S)})
    if isinstance(exc, ScheduleRejected):
        return validation_error([{"field": exc.field, "message": exc.message}])
    return None


def _answer(exc: Exception) -> JSONResponse:
    error = submit_error(exc)
    assert error is not None
    return error_response(error.status, error.code, error.detail, error.headers or None, error.extra)


def _state_conflict(job: Job, code: str, action: str) -> JSONResponse:
    """409 for an action the job's current status forbids, naming that status."""
    status = job.status.value
    return error_response(409, code, f"job {job.job_id} is {status} and cannot be {action}", extra={"status": status})


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method a route serves on this path. Starlette's own 405 names only the first route's (on /api/v1/jobs
    it would say POST and hide GET). A path some route names literally (/api/v1/jobs/batch) counts only the literal
    routes, not a template that happens to match it too (/api/v1/jobs/{jobId})."""
    found: list[tuple[str, bool]] = []  # (method, matched by a template)
    for route in _leaf_routes(request.app.router.routes):
        for method in _METHODS:
            if route.matches({**request.scope, "method": method})[0] == Match.FULL:
                found.append((method, "{" in getattr(route, "path", "")))
    literal = any(not templated for _, templated in found)
    allowed = {method for method, templated in found if not (literal and templated)}
    return ", ".join(method for method in _METHODS if method in allowed)


def _leaf_routes(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    # FastAPI wraps an included router in one route; its own routes carry the full paths.
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaf_routes(inner.routes)
        else:
            yield route


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.detail, exc.headers or None, exc.extra)

    async def on_request_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for error in exc.errors():
            loc = [str(part) for part in error.get("loc", ())]
            # FastAPI prefixes the source ("path", "header", "body"); the field name is what the caller knows.
            field = ".".join(loc[1:] if len(loc) > 1 else loc) or "request"
            problems.append({"field": field, "message": str(error.get("msg", "invalid")).lower()})
        api_error = validation_error(problems or [{"field": "request", "message": "invalid request"}])
        return error_response(api_error.status, api_error.code, api_error.detail, extra=api_error.extra)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return error_response(404, "not_found", f"no route for {request.method} {request.url.path}")
        if exc.status_code == 405:
            return error_response(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {request.url.path}",
                {**dict(exc.headers or {}), "Allow": _allowed_methods(request)},
            )
        return error_response(exc.status_code, "http_error", str(exc.detail).lower(), dict(exc.headers or {}))

    async def on_store_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log_event(LogEvent.JOB_STORE_UNAVAILABLE, level="error", path=request.url.path, reason=str(exc))
        return _answer(exc)

    async def on_not_found(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, JobNotFound)
        return error_response(404, "job_not_found", f"jobId: no job with id {exc.job_id!r}")

    async def on_not_retryable(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, JobNotRetryable)
        return _state_conflict(exc.job, "job_not_retryable", "retried")

    async def on_invalid_cursor(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidCursor)
        return error_response(422, "invalid_cursor", f"cursor: {exc}")

    async def on_not_cancelable(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, JobNotCancelable)
        return _state_conflict(exc.job, "job_not_cancelable", "canceled")

    async def on_key_reused(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, IdempotencyKeyReused)
        log_event(LogEvent.JOB_KEY_REUSED, jobId=exc.job.job_id)
        return _answer(exc)

    async def on_schedule_rejected(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ScheduleRejected)
        log_event(LogEvent.JOB_REJECTED, status=422, error="validation_error", detail=str(exc)[:200])
        return _answer(exc)

    async def on_key_in_flight(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, IdempotencyKeyInFlight)
        log_event(LogEvent.JOB_IN_FLIGHT, jobId=exc.job.job_id)
        return _answer(exc)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(JobStoreUnavailable, on_store_unavailable)
    app.add_exception_handler(JobNotFound, on_not_found)
    app.add_exception_handler(JobNotRetryable, on_not_retryable)
    app.add_exception_handler(InvalidCursor, on_invalid_cursor)
    app.add_exception_handler(JobNotCancelable, on_not_cancelable)
    app.add_exception_handler(IdempotencyKeyReused, on_key_reused)
    app.add_exception_handler(IdempotencyKeyInFlight, on_key_in_flight)
    app.add_exception_handler(ScheduleRejected, on_schedule_rejected)
