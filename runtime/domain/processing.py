"""What to do with one received job message: claim, run the job type's handler, record the outcome, and
decide the message's fate (delete it, retry it after a backoff delay, or keep it until a lease ends).

Cancel: a job whose cancel was requested while it was PROCESSING ends CANCELED when its worker noticed the
request (the heartbeat sets the job's cancel flag, `ctx.cancelled`) before the handler ended, whatever the handler
then returned or raised; a handler that ended before keeps its real outcome (the request is then a no-op). A job
claimed with its cancel already requested (a takeover, or a retry after a failed attempt) ends CANCELED unrun.

Schedule: the store refuses the claim of a job before its runAt; such a message is put back as a fresh one delayed
by the time left (Action.REPUBLISH), so that arriving early costs the job neither an attempt nor a receive.

Lazy claim: given a ClaimScheduler, a submit's message on its first receive whose job the worker's read after the
receive (`read_jobs`) showed PENDING runs before any write, and a job that ends quickly is recorded by its outcome's
write alone; one the read showed ended is deleted unrun (runtime/domain/lazy_claim.py says when, how, and what a
client sees differently)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from runtime.domain.backoff import MAX_VISIBILITY_TIMEOUT_S, Backoff
from runtime.domain.hold import Hold
from runtime.domain.job import Job, JobError, JobStatus, Progress, ResultRef
from runtime.domain.lazy_claim import ClaimScheduler, ClaimState, JobRead, LazyClaim, read_jobs
from runtime.domain.ports import (
    Clock,
    JobRecordRefused,
    JobStore,
    JobStoreUnavailable,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreUnavailable,
    OnCallbackDue,
    ReceivedMessage,
    UtcClock,
)
from runtime.domain.progress import OutcomeOnlyProgress, ProgressReport, ProgressSink
from runtime.domain.results import (
    RESULT_CONTENT_TYPE,
    RESULT_NOT_JSON_CODE,
    RESULT_NOT_STORED_CODE,
    RESULT_STORE_UNAVAILABLE_CODE,
    RESULT_TOO_LARGE_CODE,
    ResultNotJson,
    ResultTooLarge,
    encode_result,
    result_uri,
)
from runtime.domain.schedule import SQS_MAX_DELAY_S
from runtime.job_types.confinement import OUTSIDE_TENANT_CODE, Confinement
from runtime.job_types.registry import (
    CancelSignal,
    JobCanceled,
    JobContext,
    JobType,
    PermanentJobError,
    TransientJobError,
    get_job_type,
)

# A message kept for a job leased by someone else comes back this long after the lease ends, so that
# the lease has surely expired when the claim is tried again (clocks of workers differ a little).
LEASE_MARGIN_S = 1
# Error messages are stored in the job record: keep them short (item size is billed per KB).
MAX_ERROR_MESSAGE_CHARS = 500
# The stored code of a handler exception that is not one of the job errors the registry defines.
UNEXPECTED_ERROR_CODE = "handler_error"
# The stored code when a handler raises JobCanceled though no cancel was requested (a handler bug).
CANCELED_WITHOUT_REQUEST_CODE = "canceled_without_request"


class Action(StrEnum):
    DELETE = "delete"  # the message is done with
    RETRY = "retry"  # make it visible again after delay_s (backoff of a failed attempt)
    KEEP = "keep"  # another worker holds the job: look again after delay_s, never delete
    # Not due yet: send a fresh message delayed by delay_s, then delete this one (the receive count starts over).
    REPUBLISH = "republish"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # attempt failed, will be retried
    FAILED_FINAL = "failed_final"
    CANCELED = "canceled"  # cancel requested and noticed: the job ended CANCELED
    DUPLICATE = "duplicate"  # job already terminal: a late or duplicate message
    LEASED = "leased"  # job PROCESSING under someone else's live lease
    NOT_READY = "not_ready"  # claim refused for another reason (a race); look again soon
    NOT_DUE = "not_due"  # a scheduled job whose runAt is still ahead: not started
    MISSING = "missing"  # no such job
    POISON = "poison"  # the body is not a job message
    LOST_CLAIM = "lost_claim"  # ran the handler but someone else took the job over meanwhile
    RELEASED = "released"  # the worker gave the message back unfinished (a release): nothing was recorded
    STORE_UNAVAILABLE = "store_unavailable"


@dataclass(frozen=True)
class Decision:
    action: Action
    outcome: Outcome
    delay_s: int = 0
    job: Job | None = None  # the job as this worker last saw it
    attempt: int | None = None  # this worker's attempt, when it claimed the job
    error: JobError | None = None
    handler_ms: float | None = None  # time spent in the job type's handler
    # An unexpected handler exception's own text ("KeyError: 'x'"): for the logs only, never stored or shown.
    error_detail: str | None = None


@dataclass(frozen=True)
class ProcessingConfig:
    visibility_timeout_s: int
    max_attempts: int
    # The longest delay a put-back message gets (Settings.schedule_delay_window_s); a job due later comes back
    # after it and is put back again.
    delay_window_s: int = SQS_MAX_DELAY_S


OnClaimed = Callable[[Job], None]


class MessageProcessor:
    """Pure decision logic against the ports; the worker runs `process` in a pool thread."""

    def __init__(
        self,
        *,
        store: JobStore,
        objects: ObjectStore,
        confinement: Confinement,
        config: ProcessingConfig,
        backoff: Backoff,
        clock: Clock | None = None,
        job_types: Callable[[str], JobType[Any] | None] = get_job_type,
        progress: ProgressSink | None = None,
        on_callback_due: OnCallbackDue | None = None,
        claimer: ClaimScheduler | None = None,
    ) -> None:
        """`progress` stores what handlers report while they run (the worker's writer); without one, the last
        report is stored with the outcome only. `on_callback_due` hands ended jobs with a callback on. `claimer`:
        messages that may run unclaimed do (lazy claim), and it claims those that run long; None: every job is
        claimed before it runs."""
        self._on_callback_due = on_callback_due
        self._claimer = claimer
        self._store = store
        self._objects = objects
        self._confinement = confinement
        self._config = config
        self._backoff = backoff
        self._clock: Clock = clock or UtcClock()
        self._job_types = job_types
        self._progress: ProgressSink = progress if progress is not None else OutcomeOnlyProgress(self._clock)

    def read_jobs(self, messages: Sequence[ReceivedMessage]) -> dict[str, JobRead]:
        """The lazy claim's read after a receive (runtime/domain/lazy_claim.py `read_jobs`), by receipt handle; {}
        without a claimer (every job is claimed first). Raises what the store raises: the caller then passes no
        read, and the jobs are claimed first (never run blind)."""
        if self._claimer is None:
            return {}
        return read_jobs(self._store, messages, monotonic=time.monotonic())

    def process(
        self,
        received: ReceivedMessage,
        *,
        on_claimed: OnClaimed | None = None,
        cancel_flag: CancelSignal | None = None,
        hold: Hold | None = None,
        read: JobRead | None = None,
    ) -> Decision:
        """`cancel_flag` is the event the worker's heartbeat sets when it finds the job's cancel requested; `hold`
        the worker's hold on the message: once the worker released it, nothing more is written (Outcome.RELEASED).
        `read`: what `read_jobs` found of the job (None: not read; the job is claimed first)."""
        if received.message is None:
            return Decision(Action.DELETE, Outcome.POISON)
        try:
            return self._process(
                received,
                on_claimed,
                cancel_flag if cancel_flag is not None else CancelSignal(),
                hold if hold is not None else Hold(),
                read,
            )
        except JobStoreUnavailable as exc:
            # Leave the job as it is; the message comes back after a backoff and the claim (or the lease
            # check) sorts out where the job stands then.
            error = JobError("store_unavailable", _short(str(exc)))
            delay = self._backoff.visibility_delay_s(max(1, received.receive_count))
            return Decision(Action.RETRY, Outcome.STORE_UNAVAILABLE, delay_s=delay, error=error)

    def _process(
        self,
        received: ReceivedMessage,
        on_claimed: OnClaimed | None,
        cancel_flag: CancelSignal,
        hold: Hold,
        read: JobRead | None,
    ) -> Decision:
        assert received.message is not None
        if self._claimer is not None and read is not None:
            now = self._clock.now()
            if read.settled:
                # Canceled (or ended, or gone) while its message waited: deleted unrun, as a refused claim would.
                return self.decide_unclaimed(read.job, now=now)
            if read.job is not None and read.runnable(now=now, monotonic=time.monotonic()):
                return self._process_unclaimed(read.job, on_claimed, cancel_flag, hold)
        job_id = received.message.job_id
        now = self._clock.now()
        with hold.writing() as mine:
            if not mine:
                return Decision(Action.KEEP, Outcome.RELEASED)
            claim = self._store.claim(
                job_id, now=now, lease_until=now + timedelta(seconds=self._config.visibility_timeout_s)
            )
            if not claim.claimed or claim.job is None:
                return self.decide_unclaimed(claim.job, now=now)
            job = claim.job
            attempt = job.attempts
            hold.claimed(attempt)
            if job.cancel_requested:
                return self._canceled(job, attempt, None)
        if on_claimed is not None:
            on_claimed(job)

        started = time.perf_counter()
        report = self._progress.open(job_id, attempt, hold)
        try:
            error, result, detail = self._run_handler(job, attempt, cancel_flag, report)
        finally:
            # The last report goes with the outcome's write (one write, whatever the writer had stored).
            progress = self._progress.close(report)
        noticed_cancel = cancel_flag.close()  # from here on the handler has finished first
        handler_ms = (time.perf_counter() - started) * 1000.0
        with hold.writing() as mine:
            if not mine:
                # Released while the handler ran: the job was handed back (a release is no attempt) and may be
                # someone else's already under the same attempt number, so this outcome is not recorded.
                return Decision(
                    Action.KEEP, Outcome.RELEASED, job=job, attempt=attempt, handler_ms=handler_ms, error_detail=detail
                )
            return self._record(job, attempt, handler_ms, noticed_cancel, error, result, detail, progress)

    def _process_unclaimed(
        self, job: Job, on_claimed: OnClaimed | None, cancel_flag: CancelSignal, hold: Hold
    ) -> Decision:
        """The lazy claim (runtime/domain/lazy_claim.py) of `job` as the read found it (PENDING): the handler runs
        at once; the claimer claims the job if it runs past the threshold; otherwise its outcome is the one
        unclaimed write."""
        assert self._claimer is not None
        with hold.writing() as mine:
            if not mine:
                return Decision(Action.KEEP, Outcome.RELEASED)
        lazy = LazyClaim(
            job=job,
            store=self._store,
            clock=self._clock,
            hold=hold,
            lease_s=self._config.visibility_timeout_s,
            cancel_flag=cancel_flag,
            on_claimed=on_claimed,
        )
        attempt = lazy.attempt
        self._claimer.add(lazy)
        started = time.perf_counter()
        try:
            report = self._progress.open(job.job_id, attempt, hold, claim=lazy.claim)
            try:
                error, result, detail = self._run_handler(job, attempt, cancel_flag, report)
            finally:
                progress = self._progress.close(report)
        finally:
            self._claimer.discard(lazy)
        state = lazy.settle()
        noticed_cancel = cancel_flag.close()
        handler_ms = (time.perf_counter() - started) * 1000.0
        current = lazy.current
        if state is ClaimState.REFUSED:
            # Canceled, decided or taken by someone else before the claim: the outcome is not recorded.
            follow = self.decide_unclaimed(current, now=self._clock.now())
            return dataclasses.replace(
                follow, outcome=Outcome.LOST_CLAIM, attempt=attempt, handler_ms=handler_ms, error_detail=detail
            )
        with hold.writing() as mine:
            if not mine or state is ClaimState.ABANDONED:
                return Decision(
                    Action.KEEP, Outcome.RELEASED, job=job, attempt=attempt, handler_ms=handler_ms, error_detail=detail
                )
            if state is ClaimState.CLAIMED:
                assert current is not None
                return self._record(
                    current, current.attempts, handler_ms, noticed_cancel, error, result, detail, progress
                )
            # Settled unclaimed: no cancel can have been noticed (only a claim or its lease renewals notice one).
            running = job.replace(attempts=attempt)
            return self._record(
                running, attempt, handler_ms, False, error, result, detail, progress, started_at=lazy.started_at
            )

    def _record(
        self,
        job: Job,
        attempt: int,
        handler_ms: float,
        noticed_cancel: bool,
        error: JobError | None,
        result: dict[str, Any] | None,
        detail: str | None,
        progress: Progress | None,
        *,
        started_at: datetime | None = None,
    ) -> Decision:
        """The attempt's outcome write and the message's fate (call under the hold). `started_at`: the attempt ran
        unclaimed since then, and its outcome write is the unclaimed one (the store's `started_at`)."""
        job_id = job.job_id
        if noticed_cancel:
            return self._canceled(job, attempt, handler_ms, progress)

        callback_due = job.callback is not None
        if error is None:
            assert result is not None
            kept = self._keep_result(job, attempt, result, progress, started_at)
            if kept is True:
                return Decision(Action.DELETE, Outcome.SUCCEEDED, job=job, attempt=attempt, handler_ms=handler_ms)
            if kept is False:
                return self._lost_claim(job_id, attempt, handler_ms, None)
            error, detail = kept  # the result could not be kept: the attempt fails like a handler's would

        final = error.permanent or job.attempts_since_retry >= self._config.max_attempts
        now = self._clock.now()
        if not self._store.fail(
            job_id,
            attempt=attempt,
            error=error,
            final=final,
            now=now,
            progress=progress,
            callback_due=callback_due,
            started_at=started_at,
        ):
            return dataclasses.replace(self._lost_claim(job_id, attempt, handler_ms, error), error_detail=detail)
        if final:
            self._callback_due(job, JobStatus.FAILED_FINAL, now)
        # A final failure drops the message; any other is redelivered after the backoff.
        return Decision(
            Action.DELETE if final else Action.RETRY,
            Outcome.FAILED_FINAL if final else Outcome.FAILED,
            delay_s=0 if final else self._backoff.visibility_delay_s(attempt),
            job=job,
            attempt=attempt,
            error=error,
            handler_ms=handler_ms,
            error_detail=detail,
        )

    def _succeed(
        self,
        job: Job,
        attempt: int,
        *,
        result: dict[str, Any] | None,
        progress: Progress | None,
        result_ref: ResultRef | None = None,
        started_at: datetime | None = None,
    ) -> bool:
        """The SUCCEEDED write (the job enters the callback outbox in it when it has a callback), then the
        callback's hand-over."""
        now = self._clock.now()
        done = self._store.succeed(
            job.job_id,
            attempt=attempt,
            result=result,
            result_ref=result_ref,
            now=now,
            progress=progress,
            callback_due=job.callback is not None,
            started_at=started_at,
        )
        if done:
            self._callback_due(job, JobStatus.SUCCEEDED, now)
        return done

    def _keep_result(
        self, job: Job, attempt: int, result: dict[str, Any], progress: Progress | None, started_at: datetime | None
    ) -> bool | tuple[JobError, str | None]:
        """Records SUCCEEDED with the result inline, or stored apart in S3 under the tenant's prefix when it is over
        the inline bound or the record refuses it (runtime/domain/results.py). True when recorded, False when
        someone else took the job over, else (error, detail for the logs) when the result cannot be kept."""
        try:
            encoded = encode_result(result)
        except ResultTooLarge as exc:
            return JobError(RESULT_TOO_LARGE_CODE, str(exc), permanent=True), None
        except ResultNotJson as exc:
            message = "handler returned a result that json cannot carry"
            return JobError(RESULT_NOT_JSON_CODE, message, permanent=True), _short(str(exc))
        try:
            if encoded.inline:
                try:
                    return self._succeed(job, attempt, result=result, progress=progress, started_at=started_at)
                except JobRecordRefused:
                    pass  # e.g. params that leave too little room in the record: the result goes to S3 instead
            uri = result_uri(self._confinement.bucket, job.tenant, job.job_id)
            try:
                objects = self._confinement.objects_for(self._objects, job.tenant)
                objects.put_bytes(uri, encoded.data, content_type=RESULT_CONTENT_TYPE)
            except ObjectStoreUnavailable as exc:
                message = "the result could not be stored: the object store did not answer"
                return JobError(RESULT_STORE_UNAVAILABLE_CODE, message), _short(str(exc))
            except Exception as exc:  # noqa: BLE001 - refused, missing bucket, or unknown: retrying cannot help
                message = f"the result ({len(encoded.data)} bytes) could not be stored in the documents bucket"
                return JobError(RESULT_NOT_STORED_CODE, message, permanent=True), _short(f"{type(exc).__name__}: {exc}")
            return self._succeed(
                job, attempt, result=None, result_ref=encoded.reference(uri), progress=progress, started_at=started_at
            )
        except JobRecordRefused as exc:
            message = "the job record cannot hold the result or its reference"
            return JobError(RESULT_NOT_STORED_CODE, message, permanent=True), _short(str(exc))

    def _callback_due(self, job: Job, status: JobStatus, now: datetime) -> None:
        if job.callback is not None and self._on_callback_due is not None:
            self._on_callback_due(job, status, now)

    def _canceled(self, job: Job, attempt: int, handler_ms: float | None, progress: Progress | None = None) -> Decision:
        now = self._clock.now()
        callback_due = job.callback is not None
        if self._store.finish_canceled(
            job.job_id, attempt=attempt, now=now, progress=progress, callback_due=callback_due
        ):
            self._callback_due(job, JobStatus.CANCELED, now)
            return Decision(Action.DELETE, Outcome.CANCELED, job=job, attempt=attempt, handler_ms=handler_ms)
        return self._lost_claim(job.job_id, attempt, handler_ms or 0.0, None)

    def _run_handler(
        self, job: Job, attempt: int, cancel_flag: CancelSignal, progress: ProgressReport
    ) -> tuple[JobError | None, dict[str, Any] | None, str | None]:
        """(error, result, detail): `detail` is an unexpected exception's own text, for the logs only."""
        job_type = self._job_types(job.job_type)
        if job_type is None:
            return JobError("unknown_job_type", f"no job type {job.job_type!r}", permanent=True), None, None
        # Checked again here, not only at submit: a message forged into the queue, or a job stored before a rule
        # changed, must not make the worker touch another tenant's objects. The store is confined as well.
        outside = self._confinement.params_problem(job.params, job.tenant)
        if outside is not None:
            field, problem = outside
            return JobError(OUTSIDE_TENANT_CODE, _short(f"{field}: {problem}"), permanent=True), None, None
        objects = self._confinement.objects_for(self._objects, job.tenant)
        context = JobContext(
            job_id=job.job_id,
            attempt=attempt,
            trace_id=job.trace_id,
            objects=objects,
            cancel_flag=cancel_flag,
            progress=progress,
        )
        try:
            params = job_type.parse_params(job.params)
            result = job_type.handler(params, context)
        except PermanentJobError as exc:
            return JobError(exc.code, _short(exc.message), permanent=True), None, None
        except ValidationError as exc:
            return JobError("invalid_params", _short(_describe_validation(exc)), permanent=True), None, None
        except ObjectNotFound as exc:
            return JobError("object_not_found", _short(str(exc)), permanent=True), None, None
        except TransientJobError as exc:
            return JobError(exc.code, _short(exc.message)), None, None
        except JobCanceled:
            # Only reached when no cancel was noticed (the caller checks the flag first).
            message = "the handler stopped as canceled but no cancel was requested"
            return JobError(CANCELED_WITHOUT_REQUEST_CODE, message, permanent=True), None, None
        except Exception as exc:  # noqa: BLE001 - any other handler error is worth a retry
            # Its text may carry internals (a KeyError's key, a bucket or ARN in an SDK error): the job shows a
            # stable code and a sentence; the text goes to the logs under the job's trace id.
            return (
                JobError(UNEXPECTED_ERROR_CODE, unexpected_error_message(job.trace_id)),
                None,
                _short(f"{type(exc).__name__}: {exc}"),
            )
        if not isinstance(result, dict):
            message = f"handler returned {type(result).__name__}, not an object"
            return JobError(RESULT_NOT_JSON_CODE, message, permanent=True), None, None
        return None, result, None

    def _lost_claim(self, job_id: str, attempt: int, handler_ms: float, error: JobError | None) -> Decision:
        # Someone else moved the job while the handler ran (lease takeover, dead-letter verdict): our
        # outcome is not recorded. The message's fate follows the job as it is now.
        now = self._clock.now()
        current = self._store.get(job_id)
        follow = self.decide_unclaimed(current, now=now)
        return Decision(
            follow.action,
            Outcome.LOST_CLAIM,
            delay_s=follow.delay_s,
            job=current,
            attempt=attempt,
            error=error,
            handler_ms=handler_ms,
        )

    def decide_unclaimed(self, job: Job | None, *, now: datetime) -> Decision:
        if job is None:
            return Decision(Action.DELETE, Outcome.MISSING)
        if job.is_terminal:
            return Decision(Action.DELETE, Outcome.DUPLICATE, job=job)
        if job.status is JobStatus.PROCESSING and job.lease_expires_at is not None and job.lease_expires_at > now:
            # Never delete: the lease holder may crash, and then this message is what brings the job back.
            remaining = (job.lease_expires_at - now).total_seconds()
            delay = min(MAX_VISIBILITY_TIMEOUT_S, math.ceil(remaining) + LEASE_MARGIN_S)
            return Decision(Action.KEEP, Outcome.LEASED, delay_s=delay, job=job)
        if job.run_at is not None and job.run_at > now:
            remaining_s = math.ceil((job.run_at - now).total_seconds())
            delay = min(self._config.delay_window_s, max(1, remaining_s))
            return Decision(Action.REPUBLISH, Outcome.NOT_DUE, delay_s=delay, job=job)
        # PENDING/FAILED/expired lease yet the claim failed: a write raced ours. Look again shortly.
        return Decision(Action.KEEP, Outcome.NOT_READY, delay_s=LEASE_MARGIN_S, job=job)


def unexpected_error_message(trace_id: str) -> str:
    return f"the job failed with an unexpected error; its details are logged under trace id {trace_id}"


def _short(message: str) -> str:
    return message if len(message) <= MAX_ERROR_MESSAGE_CHARS else message[: MAX_ERROR_MESSAGE_CHARS - 3] + "..."


def _describe_validation(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(part) for part in error["loc"]) or "params"
        parts.append(f"params.{location}: {error['msg'].lower()}")
    return "; ".join(parts)
