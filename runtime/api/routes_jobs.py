"""/api/v1/jobs: submit, poll, retry and cancel jobs (the contract in shared/API.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from runtime.api.admission import deadline_of
from runtime.api.auth import ReaderDep, WriterDep
from runtime.api.deps import (
    BatchWritesDep,
    CallbackPolicyDep,
    JobListerDep,
    JobServiceDep,
    ResultLinksDep,
    SettingsDep,
    TraceIdDep,
)
from runtime.api.errors import ApiError, field_errors, submit_error, validation_error
from runtime.api.route_docs import AUTH_RESPONSES, RETRY_AFTER_DOC, TRACE_HEADER_DOC, error_doc, trace_id_header
from runtime.api.schemas import (
    MAX_BATCH_JOBS,
    MAX_INT_DIGITS,
    BatchSubmitItem,
    BatchSubmitOut,
    JobOut,
    JobPageOut,
    LongInteger,
    SubmitJobRequest,
    decoded_problem,
    job_document,
    storable_problem,
)
from runtime.callbacks.addresses import CallbackUrlPolicy, UnsafeCallbackUrl, syntax_problem
from runtime.domain.job import Job, JobStatus, Priority
from runtime.domain.listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, ListFilter
from runtime.domain.ports import JobStoreUnavailable
from runtime.domain.schedule import DELAY_FIELD, RUN_AT_FIELD, ScheduleRequest, parse_run_at
from runtime.domain.submit import JobNotFound, JobService, SubmitRequest, SubmitResult
from runtime.job_types.confinement import Confinement
from runtime.job_types.registry import get_job_type, job_type_names
from runtime.observability import aws_calls, emit, log_event, logs
from runtime.observability.names import JOB_TYPE_DIMENSION, LogEvent, Metric
from runtime.settings import Settings

MAX_IDEMPOTENCY_KEY_LENGTH = 255
CALLBACK_URL_FIELD = "callbackUrl"
# Seconds a poller should wait before asking again, by status (non-terminal jobs only).
POLL_AFTER_S = {JobStatus.PENDING: 1, JobStatus.PROCESSING: 2, JobStatus.FAILED: 5}
MAX_JOB_ID_LENGTH = 128
BATCH_PATH = "/api/v1/jobs/batch"

_NOT_FOUND_DOC = error_doc("`job_not_found`: no such job, or another tenant's (the same answer).")
_STORE_UNAVAILABLE_DOC = error_doc("`job_store_unavailable`", **{"Retry-After": RETRY_AFTER_DOC})


def _job_action_errors(conflict: str) -> dict[int | str, dict[str, Any]]:
    """The errors of an action on one job: unknown, refused in its status (`conflict` says when), store down."""
    return {404: _NOT_FOUND_DOC, 409: error_doc(conflict), 503: _STORE_UNAVAILABLE_DOC}


router = APIRouter(
    prefix="/api/v1/jobs", tags=["jobs"], dependencies=[Depends(trace_id_header)], responses=AUTH_RESPONSES
)


class _NotJson(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not valid json")


def _parse_int(literal: str) -> int | LongInteger:
    # Past the limit, int() would refuse with Python's own message (int max str digits); decoded_problem
    # names the field instead.
    return LongInteger(literal) if len(literal.lstrip("-")) > MAX_INT_DIGITS else int(literal)


def parse_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid_json", f"body: not utf-8 at byte {exc.start}") from None
    if not text.strip():
        raise ApiError(422, "invalid_json", "body: empty, expected a json object")
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise ApiError(
            422,
            "invalid_json",
            f"body: malformed json at line {exc.lineno} column {exc.colno} (char {exc.pos}): {exc.msg.lower()}",
        ) from None
    except _NotJson as exc:
        raise ApiError(422, "invalid_json", f"body: {exc}") from None
    except ValueError:  # Python's own words stay in here
        raise ApiError(422, "invalid_json", "body: not valid json") from None
    except RecursionError:
        raise ApiError(422, "invalid_json", "body: json nested too deeply") from None


def check_idempotency_key(key: str | None, field: str = "Idempotency-Key") -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH or not all(" " <= c <= "~" for c in key):
        shown = repr(key if len(key) <= 40 else key[:37] + "...")
        raise ApiError(
            422,
            "invalid_idempotency_key",
            f"{field}: must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable ascii characters, "
            f"got {shown} ({len(key)} characters)",
        )
    return key


def validate_submit(
    document: Any,
    trace_id: str,
    idempotency_key: str | None,
    *,
    tenant: str,
    confinement: Confinement,
    callbacks_enabled: bool = False,
) -> SubmitRequest:
    """The checked request of `tenant`, or an ApiError (422) naming the first bad field. A callbackUrl is checked
    here as text only; check_callback_address resolves its host (a blocking lookup: call it off the event loop)."""
    if not isinstance(document, dict):
        raise ApiError(422, "validation_error", f"body: must be a json object, got {type(document).__name__}")
    # Before the models: a lone surrogate would pass them and fail at the first encode (a 500).
    problem = decoded_problem(document)
    if problem:
        raise validation_error([{"field": problem.split(":", 1)[0], "message": problem.split(": ", 1)[1]}])
    try:
        request = SubmitJobRequest.model_validate(document)
    except ValidationError as exc:
        raise validation_error(field_errors(exc)) from None
    job_type = get_job_type(request.type)
    if job_type is None:
        known = job_type_names()
        raise ApiError(
            422,
            "unknown_job_type",
            f"type: unknown job type {request.type!r}; known types: {', '.join(known)}",
            knownTypes=known,
        )
    try:
        # Stored and fingerprinted with the type's defaults applied: leaving a default out or sending it
        # explicitly is the same request.
        params = job_type.parse_params(request.params).model_dump(mode="json")
    except ValidationError as exc:
        raise validation_error(field_errors(exc, prefix="params")) from None
    metadata = request.metadata or {}
    for name, value in (("params", params), ("metadata", metadata)):
        problem = storable_problem(value, name)
        if problem:
            raise validation_error([{"field": problem.split(":", 1)[0], "message": problem.split(": ", 1)[1]}])
    outside = confinement.params_problem(params, tenant)
    if outside is not None:
        raise validation_error([{"field": outside[0], "message": outside[1]}])
    callback_url = request.callbackUrl
    if callback_url is not None:
        problem = syntax_problem(callback_url) if callbacks_enabled else "callbacks are not configured here"
        if problem is not None:
            raise validation_error([{"field": CALLBACK_URL_FIELD, "message": problem}])
    return SubmitRequest(
        job_type=request.type,
        priority=Priority(request.priority),
        params=params,
        metadata=metadata,
        trace_id=trace_id,
        tenant=tenant,
        idempotency_key=idempotency_key,
        schedule=_schedule(request),
        callback_url=callback_url,
    )


def _schedule(request: SubmitJobRequest) -> ScheduleRequest | None:
    """The requested schedule (how far ahead a runAt may be is the service's check, against its clock)."""
    if request.runAt is not None and request.delaySeconds is not None:
        raise validation_error([{"field": RUN_AT_FIELD, "message": f"give {RUN_AT_FIELD} or {DELAY_FIELD}, not both"}])
    if request.runAt is not None:
        return ScheduleRequest(run_at=parse_run_at(request.runAt))
    if request.delaySeconds is not None:
        return ScheduleRequest(delay_s=request.delaySeconds)
    return None


def check_callback_address(request: SubmitRequest, policy: CallbackUrlPolicy) -> SubmitRequest:
    """The request when its callbackUrl (if any) resolves to public addresses only; ApiError (422) otherwise."""
    if request.callback_url is not None:
        try:
            policy.check(request.callback_url)
        except UnsafeCallbackUrl as exc:
            raise validation_error([{"field": CALLBACK_URL_FIELD, "message": str(exc)}]) from None
    return request


def job_response(
    job: Job, status_code: int, headers: dict[str, str] | None = None, *, result_url: str | None = None
) -> Response:
    body = json.dumps(job_document(job, result_url=result_url), separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")


def _submit(service: JobService, request: SubmitRequest) -> SubmitResult:
    # Runs in the thread pool (boto3 blocks); the request's context (trace id) came along.
    with aws_calls.category("submit"):
        result = service.submit(request)
    _record(result)
    return result


def _record(result: SubmitResult) -> None:
    job = result.job
    with logs.bind(job_id=job.job_id):
        if result.created:
            log_event(
                LogEvent.JOB_CREATED,
                jobType=job.job_type,
                priority=job.priority.value,
                published=result.published,
                keyed=job.idempotency_key is not None,
            )
            emit({Metric.JOBS_CREATED: (1, "Count")}, dimensions={JOB_TYPE_DIMENSION: job.job_type})
            if not result.published:
                log_event(LogEvent.JOB_PUBLISH_FAILED, level="warning", detail="left to the republisher")
        else:
            log_event(LogEvent.JOB_REPLAYED, status=job.status.value)


SUBMIT_DESCRIPTION = """Submits a job. With an `Idempotency-Key`, the same key and the same body (type, priority,
params and metadata, compared by a canonical fingerprint) within 24 hours answer `200` with the original job as
it is now and `Idempotent-Replayed: true`: no second job, no second message. After 24 hours the key is forgotten
and a new job is created. Keys are scoped to the caller's tenant: the same key in two tenants makes two jobs.

Params that name S3 objects (`s3://...` strings, at any depth) must name objects in the documents bucket under
`tenants/<your tenant>/`; anything else is a `422` naming the field, and the worker checks again before any S3 call.

The request body is limited to **{max_body_bytes} bytes** (`413` past it, checked on `Content-Length` and on the
bytes read) and must arrive within **{body_timeout_s:g} s** of the headers (`408` past it). Its `Content-Type` must
be `application/json` or a `+json` type (`415` otherwise). Unknown top-level fields are ignored. `params` is
validated with the job type's params schema;
`422` answers name the field (`params.source: field required`).

The new job is written first (one conditional write), then its message is published. If the queue does not
answer, the answer is still `201`: the job is stored as `PENDING` and the republisher publishes it within
**{republish_bound_s} s** (`republish_after_s` + `republish_interval_s`). If the job store does not answer,
the answer is `503 job_store_unavailable` and nothing was created.

`409 idempotency_key_in_flight` (with `Retry-After`) answers a repeat of a keyed request whose job is still
`PENDING` and younger than {submit_in_flight_s} s, i.e. while the first request may still be publishing it.

**Scheduled jobs.** `runAt` (RFC 3339 with a timezone, at most 7 days ahead; a past moment means now) or
`delaySeconds` (0-604800), not both (`422` naming the field otherwise, or for a `runAt` too far ahead or not
RFC 3339). The job is `PENDING` with `runAt` (UTC) shown until then; both fields are part of the idempotency
fingerprint as sent. Tolerance: the job **never starts before `runAt`** by the worker's clock (the claim that starts
it is a conditional write that refuses it earlier; a message that arrives early is put back with the time left,
costing no attempt), so only the workers' clock error (milliseconds with NTP / Amazon Time Sync) can make it early.
It normally starts within about 2 s after `runAt` when a worker has a free slot (SQS delays count whole seconds,
rounded up). Due within {schedule_delay_window_s} s it is sent with an SQS message delay; later, the republisher
releases it once it is within that window. If its message is lost it is published again within
**{republish_bound_s} s** after `runAt`. `POST .../cancel` cancels it while it waits; it never runs then.

**Callbacks.** With `callbackUrl`, the service POSTs `{{"event": "job.succeeded" | "job.failed" | "job.canceled",
"job": <the job as GET shows it>}}` once the job ends (SUCCEEDED, FAILED_FINAL, CANCELED), with headers
`Job-Tickets-Event-Id` (the same on every redelivery of that event) and `Job-Tickets-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256(tenant webhook secret, "<t>.<raw body>")>` (the secret comes from
`python -m runtime.admin webhooks rotate-secret`; verify the signature and reject a `t` far from now). An answer
that is not 2xx within {callback_timeout_s:g} s (redirects are not followed) is retried after
{callback_retry_base_s} s, doubling up to every {callback_retry_max_s} s, until {callback_retry_window_s} s after
the first attempt; delivery is at least once (deduplicate on the event id). The job's `callback` shows `state`
(`pending`, `delivered`, `failed`), `attempts` and `lastStatusCode`. The URL must be http(s) and its host must
resolve to public addresses only (no loopback, private, link-local, CGNAT, multicast or reserved addresses, nor
their IPv6 forms): otherwise `422` naming `callbackUrl`. It is checked again at every delivery, which connects to
the address it checked. A job's callback is handed to the delivery queue within {republish_bound_s} s of its end
even if the process that ended it dies at that moment."""


@router.post(
    "",
    status_code=201,
    summary="Submit a job",
    response_model=JobOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SubmitJobRequest.model_json_schema()}},
        }
    },
    responses={
        201: {
            "description": "Created; the body is the new job (PENDING).",
            "headers": {
                "Location": {"description": "/api/v1/jobs/{jobId}", "schema": {"type": "string"}},
                "X-Trace-Id": TRACE_HEADER_DOC,
            },
        },
        200: {
            "model": JobOut,
            "description": "Replay of an earlier request with the same key and body.",
            "headers": {
                "Idempotent-Replayed": {"description": "always `true`", "schema": {"type": "string"}},
                "X-Trace-Id": TRACE_HEADER_DOC,
            },
        },
        409: error_doc(
            "`idempotency_key_in_flight`: the first request with this key is still being handled.",
            **{"Retry-After": RETRY_AFTER_DOC},
        ),
        408: error_doc("`request_timeout`: the body did not arrive in time; the connection is closed."),
        413: error_doc("`payload_too_large`: the body is over the size limit."),
        415: error_doc("`unsupported_media_type`: the body's Content-Type is not `application/json` (or `+json`)."),
        422: error_doc(
            "`validation_error` (also `runAt` / `delaySeconds`: both given, too far ahead, not RFC 3339), "
            "`invalid_json`, `unknown_job_type` (lists `knownTypes`), "
            "`invalid_idempotency_key`, `idempotency_key_reused`; `detail` names the field."
        ),
        503: error_doc("`job_store_unavailable`: nothing was created.", **{"Retry-After": RETRY_AFTER_DOC}),
    },
)
async def submit_job(
    request: Request,
    principal: WriterDep,
    service: JobServiceDep,
    settings: SettingsDep,
    trace_id: TraceIdDep,
    callback_policy: CallbackPolicyDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", description="Optional, 1-255 printable ASCII characters.")
    ] = None,
) -> Response:
    key = check_idempotency_key(idempotency_key)
    body = await request.body()  # size, type and time already checked by RequestBodyMiddleware
    try:
        submit_request = validate_submit(
            parse_json(body),
            trace_id,
            key,
            tenant=principal.tenant,
            confinement=Confinement(settings.documents_bucket),
            callbacks_enabled=callback_policy is not None,
        )
        if submit_request.callback_url is not None and callback_policy is not None:
            submit_request = await run_in_threadpool(check_callback_address, submit_request, callback_policy)
    except ApiError as exc:
        log_event(LogEvent.JOB_REJECTED, status=exc.status, error=exc.code, detail=exc.detail[:200])
        raise
    result = await run_in_threadpool(_submit, service, submit_request)
    job = result.job
    if result.created:
        return job_response(job, 201, {"Location": f"/api/v1/jobs/{job.job_id}"})
    return job_response(job, 200, {"Idempotent-Replayed": "true"})


LIST_DESCRIPTION = f"""The caller's jobs, newest first (by `createdAt`, then `jobId`), `limit` per page
(1-{MAX_PAGE_SIZE}, default {DEFAULT_PAGE_SIZE}). Optional filters: `status`, `type`, or both. Each page is one
indexed DynamoDB Query on the caller's own partition (never a scan), whatever the table holds; with `status` and
`type` together the type is a filter on the status index, so such a page may hold fewer than `limit` items while
`nextCursor` still leads on. Follow `nextCursor` until it is null (the last page may be empty).

The listing is eventually consistent (a job submitted a moment ago, or a status that just changed, may show on the
next request); GET /api/v1/jobs/{{jobId}} reads the job strongly consistent.

`cursor` is opaque and signed: only pass one this endpoint returned, with the same filters.
`422 invalid_cursor` answers a cursor that was altered, not issued by the service, or issued to another tenant or
for other filters; `422 validation_error` a bad `status` or `limit`, `422 unknown_job_type` a bad `type`
(`detail` names the parameter). Jobs stored before listing existed are not listed."""


@router.get(
    "",
    summary="List your jobs",
    response_model=JobPageOut,
    description=LIST_DESCRIPTION,
    responses={
        200: {"description": "A page of jobs.", "headers": {"X-Trace-Id": TRACE_HEADER_DOC}},
        422: error_doc("`invalid_cursor`, `validation_error` (`status`, `limit`), `unknown_job_type` (`type`)."),
        503: _STORE_UNAVAILABLE_DOC,
    },
)
def list_jobs(
    principal: ReaderDep,
    lister: JobListerDep,
    status: Annotated[JobStatus | None, Query(description="only jobs in this status")] = None,
    job_type: Annotated[str | None, Query(alias="type", description="only jobs of this type", max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="jobs per page")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="`nextCursor` of the previous page")] = None,
) -> Response:
    if job_type is not None and get_job_type(job_type) is None:
        known = job_type_names()
        raise ApiError(
            422,
            "unknown_job_type",
            f"type: unknown job type {job_type!r}; known types: {', '.join(known)}",
            knownTypes=known,
        )
    with aws_calls.category("poll"):  # the reads of the API count together
        page = lister.list(
            ListFilter(tenant=principal.tenant, status=status, job_type=job_type), limit=limit, cursor=cursor
        )
    body = {"items": [job_document(job) for job in page.jobs], "nextCursor": page.next_cursor}
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), media_type="application/json"
    )


BATCH_DESCRIPTION = """Submits up to {max_batch_jobs} jobs at once: `{{"jobs": [submit body + optional
"idempotencyKey", ...]}}`. Each job follows exactly the rules of `POST /api/v1/jobs`, item by item (its
`idempotencyKey` plays the `Idempotency-Key` header's part), and one bad job never fails the others. The answer is
`200 {{"results": [...]}}`, one result per job in the same order: `{{"status": 201 | 200, "job": {{...}}}}`, or
`{{"status": 409 | 413 | 422 | 500 | 503, "error", "detail"}}` (409 and 503 add `retryAfter`, in seconds). Field
names in a result's `detail` are the job's own (`params.source`), its position in `results` says which job.

- `201`: created (PENDING); `200`: a replay of an earlier request with the same key and body (no new job, no message).
- `409 idempotency_key_in_flight`, `422 idempotency_key_reused`, `422 validation_error | invalid_idempotency_key |
  unknown_job_type`: as for a single submit. Params naming S3 objects outside `tenants/<your tenant>/`: `422`.
- `413 payload_too_large`: this one job, encoded as JSON, is over the single-submit limit of {max_body_bytes} bytes.
- The same `idempotencyKey` twice in one batch: the later job is decided after the earlier one. With the same body
  it is a replay of the earlier job (`200`, the same `jobId`: it is answered in the same response, so it is not
  "in flight"); with another body it is `422 idempotency_key_reused`.
- `503 job_store_unavailable` for one job (with `retryAfter`): the job store did not answer for that job and it
  was not created; retry it. If the store answers for **no** job of the batch, the whole request is
  `503 job_store_unavailable` with `Retry-After` and nothing was created.
- `503 deadline_exceeded` for one job (with `retryAfter`): the job store is too slow for the whole batch to be
  written within the batch deadline ({batch_request_deadline_s:g} s), and this job's write was never started (none
  starts in the deadline's last {batch_write_cutoff_s:g} s, which the writes under way and the send of their
  messages may take): it was **not created**; retry it. The other jobs' results are their true outcomes, so a
  slow store answers `200` with the written jobs `201` (published as usual) and the rest `503`.
- `500 internal_error` for one job: something unexpected happened to that job alone (quote the trace id).

The whole request's body is limited to **{max_batch_body_bytes} bytes** (`413` past it); `jobs` must hold
1-{max_batch_jobs} items (`422` naming `jobs` otherwise). The jobs are written in parallel, each with its own
conditional write (DynamoDB's BatchWriteItem takes no conditions, so it cannot refuse to overwrite a job). Then the
created jobs' messages go out together, ten to a `SendMessageBatch`. If the queue does not answer, created jobs are
still `201`: they are stored as `PENDING` and the republisher publishes them within **{republish_bound_s} s**."""


def _batch_items(document: Any) -> list[Any]:
    if not isinstance(document, dict):
        raise ApiError(422, "validation_error", f"body: must be a json object, got {type(document).__name__}")
    if "jobs" not in document:
        raise validation_error([{"field": "jobs", "message": "field required"}])
    items = document["jobs"]
    if not isinstance(items, list):
        raise validation_error([{"field": "jobs", "message": f"must be an array, got {type(items).__name__}"}])
    if not 1 <= len(items) <= MAX_BATCH_JOBS:
        raise validation_error([{"field": "jobs", "message": f"must hold 1-{MAX_BATCH_JOBS} jobs, got {len(items)}"}])
    return items


def _encoded_size(item: Any) -> int:
    # The item as a single submit's body would carry it; an over-long integer counts its digits.
    text = json.dumps(
        item, separators=(",", ":"), ensure_ascii=False, default=lambda value: "0" * getattr(value, "digits", 1)
    )
    return len(text.encode("utf-8", errors="surrogatepass"))


def validate_batch_item(
    item: Any,
    trace_id: str,
    *,
    tenant: str,
    confinement: Confinement,
    max_body_bytes: int,
    callback_policy: CallbackUrlPolicy | None = None,
) -> SubmitRequest:
    """One job of a batch checked as a single submit would be (ApiError otherwise): its size against the
    single-submit limit, its `idempotencyKey` as the header, the rest by validate_submit."""
    size = _encoded_size(item)
    if size > max_body_bytes:
        raise ApiError(413, "payload_too_large", f"body: {size} bytes is over the limit of {max_body_bytes} bytes")
    key = item.get("idempotencyKey") if isinstance(item, dict) else None
    if key is not None and not isinstance(key, str):
        raise validation_error([{"field": "idempotencyKey", "message": f"must be a string, got {type(key).__name__}"}])
    key = check_idempotency_key(key, field="idempotencyKey")
    request = validate_submit(
        item, trace_id, key, tenant=tenant, confinement=confinement, callbacks_enabled=callback_policy is not None
    )
    # Batch items are validated in the thread pool (see submit_jobs_batch): the lookup may block here.
    return check_callback_address(request, callback_policy) if callback_policy is not None else request


def _error_result(error: ApiError) -> dict[str, Any]:
    result: dict[str, Any] = {"status": error.status, "error": error.code, "detail": error.detail}
    result.update({name: value for name, value in error.extra.items() if value is not None})
    if "Retry-After" in error.headers:
        result["retryAfter"] = int(error.headers["Retry-After"])
    return result


@dataclass(frozen=True)
class _BatchWindows:
    """'May the batch start another write?' until batch_write_cutoff_s before the request's deadline, so that the
    writes under way and the send of their messages end in time and the answer tells every job's outcome; and
    'may it start another SendMessageBatch?' until one AWS call's bound before it (a job whose message is held back
    is answered 201 all the same: stored with its pending marker, the republisher publishes it)."""

    may_write: Callable[[], bool]
    may_send: Callable[[], bool]

    @classmethod
    def of(cls, request: Request, settings: Settings) -> _BatchWindows:
        deadline = deadline_of(request)
        if deadline is None:  # not admitted by the middleware (an app built without it): the setting from now
            deadline = time.monotonic() + settings.batch_request_deadline_s
        stop_writes_at = deadline - settings.batch_write_cutoff_s
        stop_sends_at = deadline - settings.api_aws_call_bound_s
        return cls(lambda: time.monotonic() < stop_writes_at, lambda: time.monotonic() < stop_sends_at)


def _submit_many(
    service: JobService, requests: Sequence[SubmitRequest], executor: Executor, windows: _BatchWindows
) -> list[SubmitResult | Exception]:
    with aws_calls.category("submit"):
        outcomes = service.submit_many(
            requests, executor=executor, may_start=windows.may_write, may_send=windows.may_send
        )
    for outcome in outcomes:
        if isinstance(outcome, SubmitResult):
            _record(outcome)
    return outcomes


@router.post(
    "/batch",
    name="submit_jobs_batch",
    summary="Submit many jobs",
    response_model=BatchSubmitOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["jobs"],
                        "properties": {
                            "jobs": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": MAX_BATCH_JOBS,
                                "items": BatchSubmitItem.model_json_schema(),
                            }
                        },
                    }
                }
            },
        }
    },
    responses={
        200: {
            "description": "One result per job, in order (each job's own status inside).",
            "headers": {"X-Trace-Id": TRACE_HEADER_DOC},
        },
        408: error_doc("`request_timeout`: the body did not arrive in time; the connection is closed."),
        413: error_doc("`payload_too_large`: the whole body is over the batch size limit."),
        415: error_doc("`unsupported_media_type`: the body's Content-Type is not `application/json` (or `+json`)."),
        422: error_doc(
            "`invalid_json`, or `validation_error` naming `jobs` (missing, not an array, not 1-100 "
            "items); problems of one job are answered in its result instead."
        ),
        503: error_doc(
            "`job_store_unavailable`: the store answered for no job of the batch; nothing was created. "
            "`deadline_exceeded`: the last resort when even the writes already started overran the batch deadline "
            "(a slow store otherwise answers `200` with `503 deadline_exceeded` for the jobs not started); jobs of "
            "the batch may have been created: retry with the same `idempotencyKey`s.",
            **{"Retry-After": RETRY_AFTER_DOC},
        ),
    },
)
async def submit_jobs_batch(
    request: Request,
    principal: WriterDep,
    service: JobServiceDep,
    settings: SettingsDep,
    trace_id: TraceIdDep,
    batch_writes: BatchWritesDep,
    callback_policy: CallbackPolicyDep,
) -> Response:
    body = await request.body()  # size (the batch limit), type and time already checked by RequestBodyMiddleware
    items = _batch_items(parse_json(body))
    confinement = Confinement(settings.documents_bucket)
    results: list[dict[str, Any] | None] = [None] * len(items)
    requests: list[SubmitRequest] = []
    positions: list[int] = []

    def validate_all() -> None:
        for index, item in enumerate(items):
            try:
                requests.append(
                    validate_batch_item(
                        item,
                        trace_id,
                        tenant=principal.tenant,
                        confinement=confinement,
                        max_body_bytes=settings.max_body_bytes,
                        callback_policy=callback_policy,
                    )
                )
                positions.append(index)
            except ApiError as exc:
                log_event(LogEvent.JOB_REJECTED, status=exc.status, error=exc.code, detail=exc.detail[:200], item=index)
                results[index] = _error_result(exc)

    if callback_policy is not None and any(isinstance(item, dict) and item.get("callbackUrl") for item in items):
        await run_in_threadpool(validate_all)  # callback hosts are looked up: off the event loop
    else:
        validate_all()
    windows = _BatchWindows.of(request, settings)
    outcomes = await run_in_threadpool(_submit_many, service, requests, batch_writes, windows) if requests else []
    unavailable = [outcome for outcome in outcomes if isinstance(outcome, JobStoreUnavailable)]
    if unavailable and len(unavailable) == len(outcomes):
        raise unavailable[0]  # nothing reached the store: the whole request is 503, as a single submit's would be
    for index, outcome in zip(positions, outcomes, strict=True):
        if isinstance(outcome, SubmitResult):
            results[index] = {"status": 201 if outcome.created else 200, "job": job_document(outcome.job)}
            continue
        error = submit_error(outcome, key_field="idempotencyKey")
        if error is None:
            # Unexpected, for this job only: the others' answers (jobs already created) must still reach the caller.
            log_event(
                LogEvent.HTTP_UNHANDLED_ERROR,
                level="error",
                path=request.url.path,
                item=index,
                errorType=type(outcome).__name__,
                message=str(outcome)[:500],
            )
            error = ApiError(500, "internal_error", f"an unexpected error occurred; quote trace id {trace_id}")
        log_event(LogEvent.JOB_REJECTED, status=error.status, error=error.code, detail=error.detail[:200], item=index)
        results[index] = _error_result(error)
    payload = json.dumps({"results": results}, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(payload, status_code=200, media_type="application/json")


@router.get(
    "/{jobId}",
    summary="Poll a job",
    response_model=JobOut,
    responses={
        200: {
            "description": "The job, read strongly consistent (a GET right after the POST finds it). While it is "
            "not terminal, Retry-After suggests when to poll again (PENDING 1 s, PROCESSING 2 s, "
            "FAILED 5 s). A result stored apart (`resultRef`) comes with `resultUrl`, a presigned link "
            "that downloads it for a few minutes.",
            "headers": {"Retry-After": RETRY_AFTER_DOC, "X-Trace-Id": TRACE_HEADER_DOC},
        },
        404: _NOT_FOUND_DOC,
        503: _STORE_UNAVAILABLE_DOC,
    },
)
def get_job(
    jobId: str, principal: ReaderDep, service: JobServiceDep, links: ResultLinksDep, settings: SettingsDep
) -> Response:
    job = _get(service, jobId, principal.tenant)
    headers = None if job.is_terminal else {"Retry-After": str(POLL_AFTER_S.get(job.status, 1))}
    ref = job.result_ref
    # Only a link to the caller's own objects, whatever a record says (the worker writes them there).
    own = ref is not None and Confinement(settings.documents_bucket).uri_problem(ref.uri, principal.tenant) is None
    return job_response(job, 200, headers, result_url=links.url_for(ref) if ref is not None and own else None)


def _check_job_id(job_id: str) -> None:
    """No job has an id this long: answered as unknown before the store is asked, showing the id cut short."""
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise JobNotFound(job_id[:MAX_JOB_ID_LENGTH] + "...")


def _get(service: JobService, job_id: str, tenant: str) -> Job:
    _check_job_id(job_id)
    with aws_calls.category("poll"):
        return service.get(job_id, tenant=tenant)


RETRY_DESCRIPTION = """`FAILED_FINAL`: the job goes back to `PENDING` with its full attempt budget again (`attempts`
keeps counting) and is published. That move is one conditional write: of concurrent retries of one job only the one
that made it publishes, so they cause one re-run; the others answer `200` with the job as it is now.
`CANCELED` is retried as `FAILED_FINAL` is. `PENDING` (stuck): the message is published again when the job's last
publish is at least **{retry_republish_after_s} s** old (one retry moves the job's publish marker, conditionally, and
publishes); a younger message is likely still in the queue, so the answer is `200` with the job and no new message.
`FAILED` (waiting for its automatic retry): the message is published again now. All answer `200` with the job; if
the queue does not answer, the job is still `PENDING` and the republisher publishes it within the documented bound.
`PROCESSING` and `SUCCEEDED`: `409 job_not_retryable`. Unknown id: `404 job_not_found`."""


@router.post(
    "/{jobId}/retry",
    summary="Retry a job by hand",
    response_model=JobOut,
    responses={
        200: {"description": "The job after the retry.", "headers": {"X-Trace-Id": TRACE_HEADER_DOC}},
        **_job_action_errors("`job_not_retryable`: the job is PROCESSING or SUCCEEDED (`status` says which)."),
    },
)
def retry_job(jobId: str, principal: WriterDep, service: JobServiceDep) -> Response:
    _check_job_id(jobId)
    with aws_calls.category("submit"), logs.bind(job_id=jobId):
        result = service.retry(jobId, tenant=principal.tenant)
        log_event(LogEvent.JOB_RETRIED, status=result.job.status.value, published=result.published)
    return job_response(result.job, 200)


CANCEL_DESCRIPTION = """`PENDING` or `FAILED`: `200`, the job is `CANCELED` at once and never runs (a message still
in the queue finds it terminal and is dropped). `PROCESSING`: `202`, the job shows `cancelRequested: true`; its worker
notices within **{cancel_bound_s:g} s** (it reads the flag back with each renewal of the job's lease), the handler
sees `ctx.cancelled` and may stop, and the job ends `CANCELED` (it is not retried). If the handler ended before the
worker noticed, the job keeps its real outcome. Already `CANCELED`: `200`, the same job. `SUCCEEDED` or
`FAILED_FINAL`: `409 job_not_cancelable`. A `CANCELED` job can be retried by hand (`POST .../retry`)."""


@router.post(
    "/{jobId}/cancel",
    summary="Cancel a job",
    response_model=JobOut,
    responses={
        200: {"description": "The job is CANCELED (now, or already).", "headers": {"X-Trace-Id": TRACE_HEADER_DOC}},
        202: {
            "model": JobOut,
            "description": "The job is PROCESSING: `cancelRequested` is true, its worker ends it.",
            "headers": {"Retry-After": RETRY_AFTER_DOC, "X-Trace-Id": TRACE_HEADER_DOC},
        },
        **_job_action_errors("`job_not_cancelable`: the job is SUCCEEDED or FAILED_FINAL (`status` says which)."),
    },
)
def cancel_job(jobId: str, principal: WriterDep, service: JobServiceDep) -> Response:
    _check_job_id(jobId)
    with aws_calls.category("submit"), logs.bind(job_id=jobId):
        result = service.cancel(jobId, tenant=principal.tenant)
        log_event(LogEvent.JOB_CANCEL, status=result.job.status.value, done=result.done)
        if result.canceled_now:
            emit({Metric.JOBS_CANCELED: (1, "Count")}, dimensions={JOB_TYPE_DIMENSION: result.job.job_type})
    if result.done:
        return job_response(result.job, 200)
    return job_response(result.job, 202, {"Retry-After": str(POLL_AFTER_S[JobStatus.PROCESSING])})
