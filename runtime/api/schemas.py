"""Request and response shapes of the HTTP contract (shared/API.md), and the job's JSON rendering."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from runtime.domain.callbacks import MAX_CALLBACK_URL_CHARS, CallbackState
from runtime.domain.job import Job, JobStatus
from runtime.domain.progress import MAX_PROGRESS_MESSAGE_CHARS, PROGRESS_INTERVAL_S
from runtime.domain.results import MAX_INLINE_RESULT_BYTES
from runtime.domain.schedule import MAX_SCHEDULE_AHEAD_S, parse_run_at
from runtime.domain.times import iso

# DynamoDB numbers carry 38 significant digits and nest 32 levels deep; refuse what it cannot store.
MAX_INT_DIGITS = 38
MAX_INT_ABS = 10**MAX_INT_DIGITS
MAX_DEPTH = 30


class SubmitJobRequest(BaseModel):
    """The body of POST /api/v1/jobs. Unknown top-level fields are ignored (and not part of the fingerprint)."""

    model_config = ConfigDict(extra="ignore")

    type: StrictStr = Field(min_length=1, max_length=128, description="A registered job type.")
    priority: Literal["low", "normal", "high"] = Field(default="normal")
    params: dict[str, Any] = Field(
        min_length=1, description="Non-empty object, validated against the job type's params schema."
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="Optional caller data kept with the job (null or absent means {})."
    )
    runAt: StrictStr | None = Field(
        default=None,
        description="Optional: do not start the job before this moment. RFC 3339 with a timezone "
        "(`2026-01-02T03:04:05Z`, `...+01:00`), at most 7 days ahead; a past moment means now. Not with delaySeconds.",
        json_schema_extra={"format": "date-time"},
    )
    delaySeconds: StrictInt | None = Field(
        default=None,
        ge=0,
        le=MAX_SCHEDULE_AHEAD_S,
        description=f"Optional: do not start the job before this many seconds after the submit "
        f"(0-{MAX_SCHEDULE_AHEAD_S}). Not with runAt.",
    )

    @field_validator("runAt")
    @classmethod
    def _check_run_at(cls, value: str | None) -> str | None:
        if value is not None:
            parse_run_at(value)  # the message names the value
        return value

    callbackUrl: StrictStr | None = Field(
        default=None,
        max_length=MAX_CALLBACK_URL_CHARS,
        description="Optional http(s) URL that receives one signed POST when the job ends (SUCCEEDED, FAILED_FINAL, "
        "CANCELED); its host must resolve to public addresses only. Part of the idempotency fingerprint.",
    )


# The most jobs one POST /api/v1/jobs/batch takes (the contract's limit).
MAX_BATCH_JOBS = 100


class BatchSubmitItem(SubmitJobRequest):
    """One job of a batch: a submit body plus its own optional idempotency key."""

    idempotencyKey: StrictStr | None = Field(
        default=None, description="Optional, 1-255 printable ASCII characters: the Idempotency-Key of this job."
    )


class BatchSubmitRequest(BaseModel):
    """The body of POST /api/v1/jobs/batch."""

    jobs: list[BatchSubmitItem] = Field(min_length=1, max_length=MAX_BATCH_JOBS)


class JobErrorOut(BaseModel):
    code: str
    message: str
    permanent: bool


class ProgressOut(BaseModel):
    """What the job's handler last reported (`ctx.report_progress`)."""

    fraction: float = Field(ge=0.0, le=1.0, description="how far the handler got, 0.0-1.0")
    message: str | None = Field(
        max_length=MAX_PROGRESS_MESSAGE_CHARS, description="a short status line from the handler, or null"
    )
    updatedAt: datetime = Field(description="when the handler reported it")


class ResultRefOut(BaseModel):
    """A result stored apart: too large for the job record, it is an object of the caller's own in S3."""

    uri: str = Field(description="s3://<documents bucket>/tenants/<tenant>/results/<jobId>.json")
    size: int = Field(description="bytes of the object (the result as canonical JSON, UTF-8)")
    sha256: str = Field(description="hex sha256 of those bytes")


class CallbackOut(BaseModel):
    """Where the job's terminal event goes and how its delivery went."""

    url: str
    state: CallbackState = Field(
        description="pending (the job is not terminal yet, or its event is still being delivered), delivered "
        "(a 2xx answer), failed (no 2xx answer for the whole retry window)"
    )
    attempts: int = Field(description="POSTs of the current terminal event so far")
    lastStatusCode: int | None = Field(description="the last attempt's HTTP status; null: none yet, or no answer")


class JobOut(BaseModel):
    """The job resource. Times are RFC 3339 in UTC with milliseconds."""

    jobId: str
    tenant: str = Field(description="the tenant that submitted the job (the caller's own)")
    status: JobStatus
    jobType: str
    priority: Literal["low", "normal", "high"]
    params: dict[str, Any]
    metadata: dict[str, Any]
    attempts: int
    result: dict[str, Any] | None = Field(
        description=f"null until SUCCEEDED; also null when the result is over {MAX_INLINE_RESULT_BYTES} bytes of "
        "canonical JSON: it is then stored apart (`resultRef`)"
    )
    resultRef: ResultRefOut | None = Field(
        description="set instead of `result` when the result is stored apart; null otherwise"
    )
    resultUrl: str | None = Field(
        description="with `resultRef`, in the answer of GET /api/v1/jobs/{jobId} only: a presigned HTTPS URL that "
        "downloads the result (no Authorization header) for a few minutes (the deployment's result_url_ttl_s); "
        "GET the job again for a fresh one. null otherwise"
    )
    error: JobErrorOut | None = Field(description="null unless the last attempt failed")
    createdAt: datetime
    updatedAt: datetime
    traceId: str
    transitions: dict[str, datetime] = Field(description='When each status was last entered, e.g. {"PENDING": ...}')
    cancelRequested: bool = Field(
        description="true once a cancel was asked for while the job was PROCESSING "
        "(its worker then ends it CANCELED unless the handler finished first)"
    )
    progress: ProgressOut | None = Field(
        description="the handler's last reported progress; null until it reports. Written at most once per job "
        f"every {PROGRESS_INTERVAL_S:g} s while it runs (the worker's progress_interval_s, never less), the first "
        "time that long after the first report, so a job that ends sooner shows it only with its outcome; the last "
        "value is kept when the job ends"
    )
    runAt: datetime | None = Field(
        description="a scheduled job does not start before this moment (RFC 3339, UTC); null when not scheduled"
    )
    callback: CallbackOut | None = Field(default=None, description="null: submitted without a callbackUrl")


class JobPageOut(BaseModel):
    """One page of the caller's jobs, newest first."""

    items: list[JobOut]
    nextCursor: str | None = Field(description="pass as `cursor` for the next page; null when there is none")


class FieldErrorOut(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    """Every error answer. `detail` names the field at fault; extra fields are allowed."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="machine-readable code, e.g. validation_error, job_not_found")
    detail: str = Field(description="one human sentence naming the field or the reason")
    errors: list[FieldErrorOut] | None = Field(default=None, description="every field problem, for 422")
    knownTypes: list[str] | None = Field(default=None, description="the registered job types, for unknown_job_type")


class BatchResultOut(BaseModel):
    """The answer to one job of a batch, as a single submit would have answered it."""

    model_config = ConfigDict(extra="allow")

    status: int = Field(
        description="201 created, 200 replay, 409 idempotency_key_in_flight, 413 too large, "
        "422 invalid or idempotency_key_reused, 500 unexpected (this job only), "
        "503 job_store_unavailable or deadline_exceeded (not started in time; not created)"
    )
    job: JobOut | None = Field(default=None, description="the job, for 201 and 200")
    error: str | None = Field(default=None, description="the error code, for every other status")
    detail: str | None = Field(default=None, description="one sentence naming the item's field at fault")
    retryAfter: int | None = Field(default=None, description="seconds to wait, for 409 and 503")


class BatchSubmitOut(BaseModel):
    results: list[BatchResultOut] = Field(description="one per submitted job, in the same order")


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready", "not ready"]
    reason: str | None = None


def job_document(job: Job, *, result_url: str | None = None) -> dict[str, Any]:
    """The job resource as JSON-ready data (rendered by hand: no model re-validation on the hot path).
    `result_url` is the download link of a result stored apart (GET of one job only)."""
    error = job.error
    ref = job.result_ref
    return {
        "jobId": job.job_id,
        "tenant": job.tenant,
        "status": job.status.value,
        "jobType": job.job_type,
        "priority": job.priority.value,
        "params": job.params,
        "metadata": job.metadata,
        "attempts": job.attempts,
        "result": job.result,
        "resultRef": None if ref is None else {"uri": ref.uri, "size": ref.size, "sha256": ref.sha256},
        "resultUrl": result_url,
        "error": None
        if error is None
        else {"code": error.code, "message": error.message, "permanent": error.permanent},
        "createdAt": iso(job.created_at),
        "updatedAt": iso(job.updated_at),
        "traceId": job.trace_id,
        "transitions": {status: iso(moment) for status, moment in job.transitions.items()},
        "cancelRequested": job.cancel_requested,
        "progress": None
        if job.progress is None
        else {
            "fraction": job.progress.fraction,
            "message": job.progress.message,
            "updatedAt": iso(job.progress.updated_at),
        },
        "runAt": iso(job.run_at) if job.run_at is not None else None,
        "callback": None
        if job.callback is None
        else {
            "url": job.callback.url,
            "state": job.callback.state.value,
            "attempts": job.callback.attempts,
            "lastStatusCode": job.callback.last_status_code,
        },
    }


class LongInteger:
    """Stands in for a JSON integer literal of more than MAX_INT_DIGITS digits (see routes_jobs.parse_json):
    converting a 5,000-digit literal would fail with Python's own message, and it could never be stored."""

    __slots__ = ("digits",)

    def __init__(self, literal: str) -> None:
        self.digits = len(literal.lstrip("-"))

    def __repr__(self) -> str:
        return f"<integer of {self.digits} digits>"


def decoded_problem(value: Any, path: str = "") -> str | None:
    """The first value of a parsed body that cannot be taken at all, naming its path: a string that UTF-8
    cannot encode (a lone surrogate written as a \\u escape) or an over-long integer. None when fine."""
    if isinstance(value, str):
        bad = _lone_surrogate(value)
        if bad is not None:
            return f"{path or 'body'}: string is not valid unicode (lone surrogate {value[bad]!r} at index {bad})"
    elif isinstance(value, dict):
        for key, item in value.items():
            if _lone_surrogate(key) is not None:
                return f"{path or 'body'}: key {key!r} is not valid unicode (lone surrogate)"
            problem = decoded_problem(item, f"{path}.{key}" if path else key)
            if problem:
                return problem
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problem = decoded_problem(item, f"{path or 'body'}[{index}]")
            if problem:
                return problem
    elif isinstance(value, LongInteger):
        return f"{path or 'body'}: number has {value.digits} digits; at most {MAX_INT_DIGITS} can be stored"
    return None


def _lone_surrogate(text: str) -> int | None:
    if text.isascii():
        return None
    for index, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            return index
    return None


def storable_problem(value: Any, path: str, depth: int = 0) -> str | None:
    """The first reason `value` (parsed JSON) cannot be stored as given, naming its path; None when fine."""
    if depth > MAX_DEPTH:
        return f"{path}: nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "":
                return f"{path}: keys must not be empty"
            problem = storable_problem(item, f"{path}.{key}", depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problem = storable_problem(item, f"{path}[{index}]", depth + 1)
            if problem:
                return problem
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_INT_ABS:
        return f"{path}: number has more than 38 digits"
    elif isinstance(value, float) and value != 0.0 and not 1e-130 <= abs(value) < 1e126:
        return f"{path}: number {value!r} is out of range"
    return None
