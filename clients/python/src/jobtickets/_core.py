"""What the sync and async clients share, free of I/O: the requests of each call, how answers are read, and when
and how long to wait before trying again. The two clients only send, sleep and loop."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib import metadata
from typing import Any
from urllib.parse import quote

import httpx

from jobtickets.errors import (
    ConnectionFailed,
    IdempotencyKeyInFlight,
    JobTicketsError,
    RateLimited,
    ServiceUnavailable,
    make_error,
)
from jobtickets.models import Job, JobRequest, Progress

API_PREFIX = "/api/v1/jobs"
# The contract's limits: at most this many jobs per batch request and per list page.
MAX_BATCH_JOBS = 100
MAX_PAGE_SIZE = 100
# A "Retry-After: 0" still waits this long, so a service answering it over and over is not hammered.
MIN_RETRY_DELAY_S = 0.05
# The batch statuses of one item that mean "not handled, try this item again".
RETRYABLE_ITEM_STATUSES = frozenset({409, 429, 503})

Clock = Callable[[], float]


def _user_agent() -> str:
    try:
        return f"jobtickets-python/{metadata.version('jobtickets')}"
    except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
        return "jobtickets-python"


USER_AGENT = _user_agent()


def client_headers(api_key: str, headers: Mapping[str, str] | None) -> dict[str, str]:
    if not api_key:
        raise ValueError("api_key: must not be empty")
    return {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT, **(headers or {})}


def chunks(indexes: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(indexes), size):
        yield indexes[start : start + size]


def max_retry_after(errors: Iterable[JobTicketsError | None]) -> float | None:
    waits = [error.retry_after for error in errors if error is not None and error.retry_after is not None]
    return max(waits) if waits else None


def new_idempotency_key() -> str:
    """A key for one logical submit, so that the client's own retries of it can never create a second job."""
    return f"jobtickets-{uuid.uuid4()}"


@dataclass(frozen=True)
class RetryPolicy:
    """`deadline_s` bounds one logical call, every retry and wait included; `timeout_s` bounds each HTTP attempt.
    Waits without a Retry-After grow from `backoff_base_s` to `backoff_max_s` (with jitter)."""

    deadline_s: float = 30.0
    timeout_s: float = 10.0
    backoff_base_s: float = 0.25
    backoff_max_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("deadline_s", "timeout_s", "backoff_base_s", "backoff_max_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)!r}")


class Attempts:
    """The retry budget of one logical call."""

    def __init__(self, policy: RetryPolicy, clock: Clock) -> None:
        self.policy = policy
        self.clock = clock
        self.deadline = clock() + policy.deadline_s
        self.retries = 0

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def attempt_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(max(0.001, min(self.policy.timeout_s, self.remaining())))

    def next_delay(self, retry_after: float | None) -> float | None:
        """How long to wait before the next attempt: the service's Retry-After when it gave one, else a jittered
        exponential backoff. None when that wait would end past the deadline: give up now rather than later."""
        self.retries += 1
        if retry_after is not None:
            delay = max(MIN_RETRY_DELAY_S, retry_after)
        else:
            cap = min(self.policy.backoff_max_s, self.policy.backoff_base_s * 2 ** (self.retries - 1))
            delay = cap / 2 + random.uniform(0, cap / 2)
        if self.clock() + delay >= self.deadline:
            return None
        return delay


def parse_retry_after(value: str | int | float | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return max(0.0, float(value))
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class Call:
    """One HTTP request of the API. `idempotent`: sending it twice has the effect of sending it once, so it may be
    re-sent after a connection broke mid-request (otherwise only when it surely was not sent or not handled)."""

    method: str
    path: str
    json: Any = None
    params: Mapping[str, str | int] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotent: bool = True


def submit_call(request: JobRequest) -> tuple[Call, str]:
    key = request.idempotency_key or new_idempotency_key()
    return Call("POST", API_PREFIX, json=request.body(), headers={"Idempotency-Key": key}), key


def batch_call(items: Sequence[tuple[JobRequest, str]]) -> Call:
    jobs = [{**request.body(), "idempotencyKey": key} for request, key in items]
    return Call("POST", f"{API_PREFIX}/batch", json={"jobs": jobs})


def job_path(job_id: str, action: str = "") -> str:
    if not job_id:
        raise ValueError("job_id: must not be empty")
    return f"{API_PREFIX}/{quote(job_id, safe='')}" + (f"/{action}" if action else "")


def get_call(job_id: str) -> Call:
    return Call("GET", job_path(job_id))


def cancel_call(job_id: str) -> Call:
    # Canceling a CANCELED job answers 200 again and a PROCESSING one 202 again: safe to re-send.
    return Call("POST", job_path(job_id, "cancel"))


def retry_call(job_id: str) -> Call:
    # Not re-sent blindly: if the first retry went through and the job started, a second answers 409.
    return Call("POST", job_path(job_id, "retry"), idempotent=False)


def list_call(status: str | None, job_type: str | None, page_size: int, cursor: str | None) -> Call:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size: must be 1-{MAX_PAGE_SIZE}, got {page_size}")
    params: dict[str, str | int] = {"limit": page_size}
    if status is not None:
        params["status"] = status
    if job_type is not None:
        params["type"] = job_type
    if cursor is not None:
        params["cursor"] = cursor
    return Call("GET", API_PREFIX, params=params)


def transport_retryable(exc: httpx.TransportError, call: Call) -> bool:
    """A connection that never opened is always safe to retry; one that broke after sending only if idempotent."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True
    return call.idempotent


# A 503 whose request may have been handled all the same (the service stopped waiting for it, not the work).
MAYBE_HANDLED_CODES = frozenset({"deadline_exceeded"})


def error_retryable(error: JobTicketsError, call: Call) -> bool:
    """Answers that mean "come back later": 503, 429, and a keyed submit still in flight. A 503 for a request the
    service may have carried out anyway is re-sent only when sending it twice is harmless."""
    if error.code in MAYBE_HANDLED_CODES and not call.idempotent:
        return False
    return isinstance(error, ServiceUnavailable | RateLimited | IdempotencyKeyInFlight)


def connection_failed(exc: httpx.TransportError) -> ConnectionFailed:
    reason = str(exc) or type(exc).__name__
    return ConnectionFailed(None, "connection_failed", f"no answer from the service: {reason}")


def result_download(job: Job, timeout_s: float) -> httpx.Request | None:
    """The request that downloads a job's stored-apart result: a plain GET of the presigned URL, deliberately built
    without the client's headers so the API key never goes to the storage host. None when there is nothing to
    download (inline result, or no result yet)."""
    if job.result_ref is None:
        return None
    if job.result_url is None:
        raise JobTicketsError(None, "result_url_missing", f"job {job.job_id} has resultRef but no resultUrl")
    return httpx.Request("GET", job.result_url, extensions={"timeout": httpx.Timeout(timeout_s).as_dict()})


def stored_result(job: Job, response: httpx.Response) -> dict[str, Any]:
    """The downloaded result, checked against the job's resultRef (size and sha256) before it is trusted."""
    ref = job.result_ref
    assert ref is not None
    if not response.is_success:
        raise JobTicketsError(
            response.status_code, "result_download_failed", f"the result of job {job.job_id} could not be downloaded"
        )
    content = response.content
    digest = hashlib.sha256(content).hexdigest()
    if len(content) != ref.size or digest != ref.sha256:
        raise JobTicketsError(
            response.status_code,
            "result_corrupt",
            f"the result of job {job.job_id} is {len(content)} bytes with sha256 {digest}, "
            f"expected {ref.size} bytes with sha256 {ref.sha256}",
        )
    document = json.loads(content)
    if not isinstance(document, dict):
        raise JobTicketsError(
            response.status_code, "result_corrupt", f"the result of job {job.job_id} is not an object"
        )
    return document


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def error_of(response: httpx.Response) -> JobTicketsError:
    body = _json(response)
    return make_error(
        response.status_code,
        body if isinstance(body, Mapping) else None,
        reason=response.reason_phrase,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        trace_id=response.headers.get("X-Trace-Id"),
    )


def body_of(response: httpx.Response) -> Mapping[str, Any]:
    body = _json(response)
    if not isinstance(body, Mapping):
        raise JobTicketsError(
            response.status_code, "unexpected_response", f"expected a json object, got {response.text[:80]!r}"
        )
    return body


def job_of(response: httpx.Response) -> Job:
    try:
        return Job.from_dict(body_of(response))
    except ValueError as exc:
        raise JobTicketsError(response.status_code, "unexpected_response", str(exc)) from None


def page_of(response: httpx.Response) -> tuple[list[Job], str | None]:
    body = body_of(response)
    items = body.get("items")
    cursor = body.get("nextCursor")
    if not isinstance(items, list):
        raise JobTicketsError(response.status_code, "unexpected_response", "list answer has no items array")
    return [Job.from_dict(item) for item in items if isinstance(item, Mapping)], (
        cursor if isinstance(cursor, str) and cursor else None
    )


@dataclass(frozen=True)
class BatchItemResult:
    """The answer to one job of `submit_many`, in the order given: `job` for 201 (created) and 200 (replay),
    otherwise `error` (the typed error a single submit would have raised)."""

    index: int
    status: int
    idempotency_key: str
    job: Job | None = None
    error: JobTicketsError | None = None

    @property
    def ok(self) -> bool:
        return self.job is not None

    @property
    def created(self) -> bool:
        return self.status == 201


def batch_results_of(response: httpx.Response, indexes: Sequence[int], keys: Sequence[str]) -> list[BatchItemResult]:
    results = body_of(response).get("results")
    if not isinstance(results, list) or len(results) != len(indexes):
        raise JobTicketsError(response.status_code, "unexpected_response", "batch answer does not match the request")
    answers = []
    for index, key, item in zip(indexes, keys, results, strict=True):
        item = item if isinstance(item, Mapping) else {}
        status = item.get("status")
        status = status if isinstance(status, int) else 0
        job = item.get("job")
        if status in (200, 201) and isinstance(job, Mapping):
            answers.append(BatchItemResult(index, status, key, job=Job.from_dict(job)))
        else:
            error = make_error(status, item, retry_after=parse_retry_after(item.get("retryAfter")))
            answers.append(BatchItemResult(index, status, key, error=error))
    return answers


class WaitState:
    """The bookkeeping of `wait`: which callbacks a freshly polled job triggers, and how long to sleep next
    (the service's Retry-After when it gave one, else a backoff from `poll_min_s` growing to `poll_max_s`)."""

    def __init__(self, poll_min_s: float, poll_max_s: float) -> None:
        self.poll_min_s = poll_min_s
        self.poll_max_s = poll_max_s
        self.next_backoff = poll_min_s
        self.last_progress: tuple[float, str | None] | None = None
        self.last_status: str | None = None

    def observe(self, job: Job) -> tuple[bool, bool]:
        """(progress changed, status changed) since the previous poll; the first poll counts as a change of status,
        and of progress when the job has any."""
        progress = _progress_key(job.progress)
        progress_changed = progress is not None and progress != self.last_progress
        status_changed = job.status != self.last_status
        self.last_progress = progress if progress is not None else self.last_progress
        self.last_status = job.status
        return progress_changed, status_changed

    def delay(self, retry_after: float | None, remaining: float | None) -> float:
        if retry_after is not None:
            delay = max(retry_after, 0.0)  # never sooner than the service asked
        else:
            delay = self.next_backoff
            self.next_backoff = min(self.poll_max_s, self.next_backoff * 1.5)
        return delay if remaining is None else max(0.0, min(delay, remaining))


def _progress_key(progress: Progress | None) -> tuple[float, str | None] | None:
    return None if progress is None else (progress.fraction, progress.message)
