"""The synchronous client of the job tickets API (`/api/v1`)."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from jobtickets import _core
from jobtickets._core import Attempts, BatchItemResult, Call, RetryPolicy, WaitState
from jobtickets.errors import WaitTimeout
from jobtickets.models import Job, JobRequest, Priority

JobCallback = Callable[[Job], object]


class JobTicketsClient:
    """A client for one service URL and one API key (or OIDC access token).

    Every call retries connection failures, 503, 429 and 409 `idempotency_key_in_flight`, waiting as Retry-After
    says (or backing off), until `deadline_s` seconds have passed since the call began; then the last error is
    raised. `timeout_s` bounds each HTTP attempt. `transport`, `clock` and `sleep` replace the network and time
    (tests, custom schedulers)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        deadline_s: float = 30.0,
        timeout_s: float = 10.0,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 5.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = RetryPolicy(deadline_s, timeout_s, backoff_base_s, backoff_max_s)
        self._clock = clock
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=_core.client_headers(api_key, headers), transport=transport
        )

    def __enter__(self) -> JobTicketsClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call, attempts: Attempts | None = None) -> httpx.Response:
        attempts = attempts or Attempts(self.policy, self._clock)
        while True:
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    json=call.json,
                    params=call.params,
                    headers=call.headers,
                    timeout=attempts.attempt_timeout(),
                )
            except httpx.TransportError as exc:
                if not _core.transport_retryable(exc, call):
                    raise _core.connection_failed(exc) from exc
                delay = attempts.next_delay(None)
                if delay is None:
                    raise _core.connection_failed(exc) from exc
                self._sleep(delay)
                continue
            if response.is_success:
                return response
            error = _core.error_of(response)
            delay = attempts.next_delay(error.retry_after) if _core.error_retryable(error, call) else None
            if delay is None:
                raise error
            self._sleep(delay)

    def submit(
        self,
        type: str,
        params: Mapping[str, Any],
        *,
        priority: Priority | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        run_at: datetime | str | None = None,
        delay_seconds: int | None = None,
        callback_url: str | None = None,
    ) -> Job:
        """Submits a job and returns it (PENDING when new; as it is now when the key replays an earlier submit).
        Without `idempotency_key` one is generated for this call, so that its retries never make a second job."""
        request = JobRequest(type, params, priority, metadata, idempotency_key, run_at, delay_seconds, callback_url)
        call, _key = _core.submit_call(request)
        return _core.job_of(self._send(call))

    def get(self, job_id: str) -> Job:
        return _core.job_of(self._send(_core.get_call(job_id)))

    def list(self, status: str | None = None, type: str | None = None, *, page_size: int = 20) -> Iterator[Job]:
        """Every job of yours (newest first), optionally of one status and/or type, following `nextCursor` page
        by page (`page_size` 1-100) as the iteration goes."""
        cursor: str | None = None
        while True:
            jobs, cursor = _core.page_of(self._send(_core.list_call(status, type, page_size, cursor)))
            yield from jobs
            if cursor is None:
                return

    def cancel(self, job_id: str) -> Job:
        """Cancels the job: CANCELED at once when it was waiting, or `cancel_requested` while PROCESSING."""
        return _core.job_of(self._send(_core.cancel_call(job_id)))

    def fetch_result(self, job: Job) -> dict[str, Any] | None:
        """The job's result: inline as `job.result`, or, when it was stored apart (`job.result_ref`), downloaded
        from its presigned URL (getting the job again first when `job` has no fresh URL) and checked against the
        size and sha256 the job names. None while the job has no result."""
        if job.result_ref is None:
            return job.result
        if job.result_url is None:
            job = self.get(job.job_id)
        request = _core.result_download(job, self.policy.timeout_s)
        if request is None:
            return job.result
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            raise _core.connection_failed(exc) from exc
        return _core.stored_result(job, response)

    def retry(self, job_id: str) -> Job:
        return _core.job_of(self._send(_core.retry_call(job_id)))

    def submit_many(self, jobs: Sequence[JobRequest]) -> builtins.list[BatchItemResult]:
        """Submits the jobs through the batch endpoint (100 per request), one result per job in order. Jobs
        without an idempotency key get one, so the items answered 409 in flight, 429 or 503 are re-sent (alone)
        until the deadline without risk of duplicates; other failures are returned as they are."""
        keyed = [(job, job.idempotency_key or _core.new_idempotency_key()) for job in jobs]
        results: dict[int, BatchItemResult] = {}
        attempts = Attempts(self.policy, self._clock)
        pending: Sequence[int] = range(len(keyed))
        while pending:
            for chunk in _core.chunks(pending, _core.MAX_BATCH_JOBS):
                call = _core.batch_call([keyed[index] for index in chunk])
                answers = _core.batch_results_of(self._send(call, attempts), chunk, [keyed[i][1] for i in chunk])
                results.update((answer.index, answer) for answer in answers)
            pending = [i for i in pending if results[i].status in _core.RETRYABLE_ITEM_STATUSES]
            if not pending:
                break
            delay = attempts.next_delay(_core.max_retry_after(results[i].error for i in pending))
            if delay is None:
                break
            self._sleep(delay)
        return [results[index] for index in range(len(keyed))]

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        *,
        on_progress: JobCallback | None = None,
        on_status: JobCallback | None = None,
        poll_min_s: float = 0.5,
        poll_max_s: float = 5.0,
    ) -> Job:
        """Polls the job until it is terminal and returns it (whatever its outcome). Between polls it sleeps as the
        service's Retry-After says, else with a backoff from `poll_min_s` to `poll_max_s`. `on_progress(job)` runs
        when the job's progress changes, `on_status(job)` when its status does (and for the first poll).
        Raises WaitTimeout after `timeout` seconds (None: no limit)."""
        state = WaitState(poll_min_s, poll_max_s)
        end = None if timeout is None else self._clock() + timeout
        while True:
            response = self._send(_core.get_call(job_id))
            job = _core.job_of(response)
            progress_changed, status_changed = state.observe(job)
            if status_changed and on_status is not None:
                on_status(job)
            if progress_changed and on_progress is not None:
                on_progress(job)
            if job.is_terminal:
                return job
            remaining = None if end is None else end - self._clock()
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(job_id, timeout or 0.0, job)
            self._sleep(state.delay(_core.parse_retry_after(response.headers.get("Retry-After")), remaining))
