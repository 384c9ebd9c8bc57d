"""Typed errors for the service's answers: each carries the HTTP status, the contract's machine code (the error
body's `error`) and its one-sentence `detail`. The class is chosen by the code first, then by the status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class JobTicketsError(Exception):
    """Any failure of a call. `status` is None when no HTTP answer arrived (see ConnectionFailed)."""

    def __init__(
        self,
        status: int | None,
        code: str,
        detail: str,
        *,
        body: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail}" if status is None else f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.body: dict[str, Any] = dict(body or {})
        self.retry_after = retry_after
        # The answer's X-Trace-Id: quote it when reporting a server error.
        self.trace_id = trace_id


class ConnectionFailed(JobTicketsError):
    """The service could not be reached (or the connection broke) and retrying did not help within the deadline."""


class Unauthorized(JobTicketsError):
    """401: the API key or token is missing, unknown, revoked or expired."""


class Forbidden(JobTicketsError):
    """403: the token lacks the scope the call needs (jobs:read, jobs:write)."""


class NotFound(JobTicketsError):
    """404: no such route."""


class JobNotFound(NotFound):
    """404 job_not_found: no job with this id for your tenant."""


class Conflict(JobTicketsError):
    """409: the call conflicts with the job's current state."""


class JobNotRetryable(Conflict):
    """409 job_not_retryable: the job is PROCESSING or SUCCEEDED."""


class JobNotCancelable(Conflict):
    """409 job_not_cancelable: the job is SUCCEEDED or FAILED_FINAL."""


class IdempotencyKeyInFlight(Conflict):
    """409 idempotency_key_in_flight: the first request with this key is still being handled (retried for you
    until the deadline)."""


class ValidationFailed(JobTicketsError):
    """422: the request was refused; `detail` names the field, `errors` lists every field problem when given."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        problems = self.body.get("errors")
        return [problem for problem in problems if isinstance(problem, dict)] if isinstance(problems, list) else []


class UnknownJobType(ValidationFailed):
    """422 unknown_job_type: `known_types` lists the registered types."""

    @property
    def known_types(self) -> list[str]:
        known = self.body.get("knownTypes")
        return [str(name) for name in known] if isinstance(known, list) else []


class IdempotencyKeyReused(ValidationFailed):
    """422 idempotency_key_reused: the key was used before for a request with a different body."""


class InvalidCursor(ValidationFailed):
    """422 invalid_cursor: the list cursor was not issued by the service (or for other filters)."""


class PayloadTooLarge(JobTicketsError):
    """413 payload_too_large."""


class RateLimited(JobTicketsError):
    """429: too many requests (retried for you until the deadline, honouring Retry-After)."""


class ServerError(JobTicketsError):
    """5xx other than 503: something unexpected happened in the service (quote the trace id)."""


class ServiceUnavailable(ServerError):
    """503: the service (or its job store) is not answering now; nothing was changed. Retried until the deadline."""


class WaitTimeout(JobTicketsError, TimeoutError):
    """`wait` gave up before the job reached a terminal status; `job` is the last state seen."""

    def __init__(self, job_id: str, timeout_s: float, job: Any) -> None:
        status = getattr(job, "status", "unknown")
        super().__init__(None, "wait_timeout", f"job {job_id} still {status} after {timeout_s:g} s")
        self.job = job


class InvalidSignature(ValueError):
    """A webhook delivery whose Job-Tickets-Signature does not verify (the reason is the message)."""


_BY_CODE: dict[str, type[JobTicketsError]] = {
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "job_not_found": JobNotFound,
    "not_found": NotFound,
    "job_not_retryable": JobNotRetryable,
    "job_not_cancelable": JobNotCancelable,
    "idempotency_key_in_flight": IdempotencyKeyInFlight,
    "idempotency_key_reused": IdempotencyKeyReused,
    "invalid_cursor": InvalidCursor,
    "unknown_job_type": UnknownJobType,
    "validation_error": ValidationFailed,
    "invalid_json": ValidationFailed,
    "invalid_idempotency_key": ValidationFailed,
    "payload_too_large": PayloadTooLarge,
    "job_store_unavailable": ServiceUnavailable,
    "overloaded": ServiceUnavailable,
    "deadline_exceeded": ServiceUnavailable,
}

_BY_STATUS: dict[int, type[JobTicketsError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_class(status: int, code: str) -> type[JobTicketsError]:
    """The class for an answer: by its code when known, else by its status (a new code of a known kind still
    lands in the right family), else JobTicketsError."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else JobTicketsError


def make_error(
    status: int,
    body: Mapping[str, Any] | None,
    *,
    reason: str = "",
    retry_after: float | None = None,
    trace_id: str | None = None,
) -> JobTicketsError:
    """The typed error for an HTTP answer; a body that is not the contract's error shape (a proxy's HTML page)
    gives the code `http_<status>` and the reason phrase."""
    body = body or {}
    code = body.get("error")
    detail = body.get("detail")
    code = code if isinstance(code, str) and code else f"http_{status}"
    detail = detail if isinstance(detail, str) and detail else (reason.lower() or f"http status {status}")
    return error_class(status, code)(status, code, detail, body=body, retry_after=retry_after, trace_id=trace_id)
