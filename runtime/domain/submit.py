"""Use cases of the API: submit a job (idempotent, one conditional write), submit many, get it, retry or
cancel it by hand."""

from __future__ import annotations

import contextvars
import math
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from runtime.domain.callbacks import Callback
from runtime.domain.fingerprint import fingerprint
from runtime.domain.job import RETRYABLE_TERMINAL_STATUSES, Job, JobStatus, Priority
from runtime.domain.ports import (
    Clock,
    CreateOutcome,
    JobMessage,
    JobQueue,
    JobStore,
    OnCallbackDue,
    QueueUnavailable,
)
from runtime.domain.schedule import DelayWindow, ScheduleRequest, publish_delay_s

# Fixed forever: job ids derived from idempotency keys must stay the same across releases.
IDEMPOTENCY_NAMESPACE = uuid.UUID("5b0e6f0e-8f3a-4d56-9a43-2f1c6d0b7a19")
# Conflicts that can repeat only when other requests keep advancing the same key at the same moment.
_MAX_ROUNDS = 8


class IdempotencyKeyReused(Exception):
    def __init__(self, job: Job) -> None:
        super().__init__(f"idempotency key was used for a different request (job {job.job_id})")
        self.job = job


class IdempotencyKeyInFlight(Exception):
    def __init__(self, job: Job, retry_after_s: int) -> None:
        super().__init__(f"a request with this idempotency key is still being handled (job {job.job_id})")
        self.job = job
        self.retry_after_s = retry_after_s


class SubmitNotStarted(Exception):
    """An item of submit_many whose write was never started (its caller's stop point had passed): nothing of it
    was written, so submitting it again cannot duplicate it."""

    def __init__(self) -> None:
        super().__init__("the write was not started before the stop point; nothing was written")


class JobNotFound(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class JobNotRetryable(Exception):
    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.job_id} is {job.status} and cannot be retried")
        self.job = job


class JobNotCancelable(Exception):
    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.job_id} is {job.status} and cannot be canceled")
        self.job = job


@dataclass(frozen=True)
class SubmitRequest:
    """A validated submit: params already checked against the job type's params model."""

    job_type: str
    priority: Priority
    params: dict[str, Any]
    metadata: dict[str, Any]
    trace_id: str
    tenant: str  # the authenticated caller's tenant: owns the job and scopes its idempotency key
    idempotency_key: str | None = None
    schedule: ScheduleRequest | None = None  # runAt or delaySeconds; None: the job may start at once
    callback_url: str | None = None  # checked already (runtime/callbacks/addresses.py)


@dataclass(frozen=True)
class SubmitResult:
    job: Job
    created: bool  # False: a replay of an earlier request with the same key and body
    # False when created but the queue did not answer (the republisher will publish it). A scheduled job held back
    # for the republisher (runAt beyond the delay window) counts as published: nothing was due yet.
    published: bool


@dataclass(frozen=True)
class RetryResult:
    job: Job
    published: bool


@dataclass(frozen=True)
class CancelResult:
    job: Job
    # False: the job is PROCESSING and only has cancelRequested set; its worker ends it (or finishes first).
    done: bool
    # True: this cancel moved the job to CANCELED (False when it was CANCELED already, or only requested).
    canceled_now: bool = False


def job_id_for_key(tenant: str, key: str, generation: int) -> str:
    """The job id of a keyed submit: the tenant is part of the name, so the same key in two tenants makes two
    jobs, and nobody can derive a job's id from its key alone (and ids of other tenants answer 404 anyway)."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{tenant}\n{key}\n{generation}"))


class JobService:
    """Submit, get and retry against the ports. Store errors (JobStoreUnavailable) propagate. A scheduled job's
    message goes out with the delay left until its runAt when that is within `delay_window`; a later one is held
    back for the republisher (runtime/domain/schedule.py)."""

    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        clock: Clock,
        *,
        retention_s: int,
        idempotency_ttl_s: int,
        submit_in_flight_s: float,
        retry_republish_after_s: float,
        delay_window: DelayWindow | None = None,
        on_callback_due: OnCallbackDue | None = None,
    ) -> None:
        self._on_callback_due = on_callback_due
        self._store = store
        self._queue = queue
        self._clock = clock
        self._retention_s = retention_s
        self._idempotency_ttl = timedelta(seconds=idempotency_ttl_s)
        self._in_flight = timedelta(seconds=submit_in_flight_s)
        self._retry_republish_after = timedelta(seconds=retry_republish_after_s)
        self._window = delay_window or DelayWindow()

    # -- submit ---------------------------------------------------------------------------------------------

    def submit(self, request: SubmitRequest) -> SubmitResult:
        result = self._write(request)
        if result.created:
            return replace(result, published=self._publish(result.job, first=True))
        return result

    def submit_many(
        self,
        requests: Sequence[SubmitRequest],
        *,
        executor: Executor | None = None,
        may_start: Callable[[], bool] | None = None,
        may_send: Callable[[], bool] | None = None,
    ) -> list[SubmitResult | Exception]:
        """Each request as submit() would answer it, in order: its SubmitResult, or the exception submit() would
        raise (IdempotencyKeyReused, IdempotencyKeyInFlight, JobStoreUnavailable). One item's failure never
        touches the others. The writes run on `executor` (conditional puts cannot go in a BatchWriteItem); then
        the created jobs' messages go out together, QUEUE_BATCH_LIMIT to a call.

        `may_start` is asked before each write (when its turn comes on the executor, not when queued): an item it
        refuses is SubmitNotStarted, with nothing written, so that a caller with a deadline can stop starting
        writes in time and still answer with every item's true outcome. `may_send` is asked before each
        SendMessageBatch of the created jobs' messages: a job whose message it holds back is created all the same
        (published False, as when the queue does not answer: its pending marker has the republisher publish it).

        A key repeated within the call is decided after its first use, against that item's outcome: the same
        body replays the first item's job (created False), another body is IdempotencyKeyReused; if the first
        item got no job (in flight, reused, store down, not started), the repeat is submitted on its own after it
        (never a replay of a job that was not written)."""
        chains: dict[str, list[int]] = {}
        singles: list[list[int]] = []
        for index, request in enumerate(requests):
            if request.idempotency_key is None:
                singles.append([index])
            else:
                chains.setdefault(f"{request.tenant}#{request.idempotency_key}", []).append(index)
        groups = singles + list(chains.values())
        outcomes: list[SubmitResult | Exception | None] = [None] * len(requests)

        def run_group(indexes: list[int]) -> None:
            first: Job | None = None
            for index in indexes:
                try:
                    if first is None:
                        if may_start is not None and not may_start():
                            outcomes[index] = SubmitNotStarted()
                            continue
                        outcomes[index] = result = self._write(requests[index])
                        first = result.job
                    else:
                        outcomes[index] = self._replay_within_batch(requests[index], first)
                except Exception as exc:  # noqa: BLE001 - the item's own answer; the others go on
                    outcomes[index] = exc

        _run_all(run_group, groups, executor)
        created = [
            (index, outcome.job)
            for index, outcome in enumerate(outcomes)
            if isinstance(outcome, SubmitResult) and outcome.created
        ]
        now = self._clock.now()
        due = [(index, job, publish_delay_s(job.run_at, job.pending_since, now)) for index, job in created]
        to_send = [
            (index, JobMessage.for_job(job, delay_s=delay, from_submit=True))
            for index, job, delay in due
            if delay is not None
        ]
        unsent = self._queue.send_many([message for _, message in to_send], may_start=may_send)
        unsent_indexes = {to_send[position][0] for position in unsent}
        for index, job in created:
            outcomes[index] = SubmitResult(job, created=True, published=index not in unsent_indexes)
        return [outcome for outcome in outcomes if outcome is not None]

    def _replay_within_batch(self, request: SubmitRequest, first: Job) -> SubmitResult:
        # The caller sees the first item's answer in the same response: a repeat of it is a replay, not in flight.
        if _fingerprint(request) != first.fingerprint:
            raise IdempotencyKeyReused(first)
        return SubmitResult(first, created=False, published=False)

    def _write(self, request: SubmitRequest) -> SubmitResult:
        """The job stored (created) or the replayed one; nothing published yet. Every write of this request carries
        one fresh token, so a write the store made but did not answer (the SDK retried it) is recognised as ours."""
        print_ = _fingerprint(request)
        token = uuid.uuid4().hex
        if request.idempotency_key is None:
            job = self._new_job(request, str(uuid.uuid4()), print_, scoped_key=None, token=token)
            outcome = self._store.create(job)
            if not _ours(outcome, job):  # a uuid4 collision: never overwrite, never answer with someone else's job
                raise RuntimeError(f"job id collision: {job.job_id}")
            return SubmitResult(outcome.job, created=True, published=False)
        return self._submit_with_key(request, print_, token)

    def _submit_with_key(self, request: SubmitRequest, print_: str, token: str) -> SubmitResult:
        assert request.idempotency_key is not None
        tenant, key = request.tenant, request.idempotency_key
        scoped_key = f"{tenant}#{key}"
        head_id = job_id_for_key(tenant, key, 0)
        generation = 0
        job_id = head_id
        for _ in range(_MAX_ROUNDS):
            job = self._new_job(request, job_id, print_, scoped_key=scoped_key, token=token)
            outcome = self._store.create(job)
            if _ours(outcome, job):
                return SubmitResult(outcome.job, created=True, published=False)
            existing = outcome.job
            if generation == 0 and existing.key_generation > 0:
                # The head says a later generation is the live one: decide on that job (or heal a crash
                # between advancing the head and creating that generation by creating it now).
                generation = existing.key_generation
                job_id = job_id_for_key(tenant, key, generation)
                live = self._store.get(job_id)
                if live is None:
                    continue
                existing = live
            now = self._clock.now()
            if now - existing.created_at < self._idempotency_ttl:
                return self._replay(existing, print_, now)
            # The key is forgotten after its TTL: move the head to the next generation, then create it.
            new_generation = generation + 1
            new_expires_at = int(now.timestamp()) + self._retention_s
            self._store.advance_key_generation(
                head_id, expected=generation, new=new_generation, keep_until=new_expires_at
            )
            # Whether we or a concurrent request advanced it, the next generation's job is created by a
            # conditional put; the loser of that race replays the winner's job.
            generation = new_generation
            job_id = job_id_for_key(tenant, key, generation)
        raise RuntimeError(f"idempotency key {scoped_key!r} kept changing under {_MAX_ROUNDS} attempts")

    def _replay(self, existing: Job, print_: str, now: datetime) -> SubmitResult:
        if existing.fingerprint != print_:
            raise IdempotencyKeyReused(existing)
        age = now - existing.created_at
        if existing.status == JobStatus.PENDING and age < self._in_flight:
            remaining_s = (self._in_flight - age).total_seconds()
            raise IdempotencyKeyInFlight(existing, retry_after_s=max(1, math.ceil(remaining_s)))
        return SubmitResult(existing, created=False, published=False)

    def _new_job(self, request: SubmitRequest, job_id: str, print_: str, *, scoped_key: str | None, token: str) -> Job:
        now = self._clock.now()
        run_at = request.schedule.run_at_from(now) if request.schedule is not None else None  # ScheduleRejected
        return Job(
            job_id=job_id,
            status=JobStatus.PENDING,
            job_type=request.job_type,
            priority=request.priority,
            params=request.params,
            metadata=request.metadata,
            created_at=now,
            updated_at=now,
            trace_id=request.trace_id,
            fingerprint=print_,
            tenant=request.tenant,
            idempotency_key=scoped_key,
            transitions={JobStatus.PENDING.value: now},
            pending_since=self._window.pending_marker(run_at, now),
            expires_at=int(now.timestamp()) + self._retention_s,
            request_token=token,
            run_at=run_at,
            callback=Callback(url=request.callback_url) if request.callback_url is not None else None,
        )

    def _publish(self, job: Job, *, first: bool = False) -> bool:
        """`first`: the job's submit, whose message is marked so (JobMessage.for_job)."""
        delay_s = publish_delay_s(job.run_at, job.pending_since, self._clock.now())
        if delay_s is None:
            return True  # held back: the republisher releases it once its runAt is within the delay window
        try:
            self._queue.send(JobMessage.for_job(job, delay_s=delay_s, from_submit=first))
        except QueueUnavailable:
            return False
        return True

    # -- get, retry -----------------------------------------------------------------------------------------

    def get(self, job_id: str, *, tenant: str) -> Job:
        """The job, if it exists and belongs to `tenant`: another tenant's job does not exist for the caller."""
        job = self._store.get(job_id)
        if job is None or job.tenant != tenant:
            raise JobNotFound(job_id)
        return job

    def retry(self, job_id: str, *, tenant: str) -> RetryResult:
        """FAILED_FINAL or CANCELED: back to PENDING by one conditional write, and only the retry that made it
        publishes; concurrent retries of one job cause one re-run, the others get the job as it is now.
        PENDING: published again only when its last publish (the pending marker) is older than
        `retry_republish_after_s`, by the one retry that moves the marker (conditional): a message that is likely
        still on its way is not doubled, since a duplicate is not harmless once the job fails (a FAILED job is
        claimable, so it would run an extra attempt early). FAILED: published again (its next attempt now).
        PROCESSING, SUCCEEDED: JobNotRetryable. A scheduled job keeps its runAt: while it waits (its marker is ahead
        of the clock) a retry of it as PENDING publishes nothing, and one requeued before its runAt is sent delayed
        or held back again."""
        job = self.get(job_id, tenant=tenant)
        if job.status in (JobStatus.PROCESSING, JobStatus.SUCCEEDED):
            raise JobNotRetryable(job)
        now = self._clock.now()
        if job.status in RETRYABLE_TERMINAL_STATUSES:
            requeued = self._store.requeue(
                job_id, now=now, pending_since=self._window.pending_marker(_ahead(job.run_at, now), now)
            )
            if requeued is None:  # another retry requeued it first: that one publishes
                return RetryResult(self.get(job_id, tenant=tenant), published=False)
            return RetryResult(requeued, published=self._publish(requeued))
        if job.status is JobStatus.PENDING:
            last_publish = job.pending_since or job.created_at
            if now - last_publish < self._retry_republish_after:
                return RetryResult(job, published=False)
            marker = self._window.pending_marker(_ahead(job.run_at, now), now)
            if not self._store.mark_republished(job_id, expected_pending_since=last_publish, pending_since=marker):
                return RetryResult(self.get(job_id, tenant=tenant), published=False)
            job = job.replace(pending_since=marker)
        return RetryResult(job, published=self._publish(job))

    def cancel(self, job_id: str, *, tenant: str) -> CancelResult:
        """PENDING or FAILED: CANCELED at once (a message still in the queue finds it terminal and is dropped).
        PROCESSING: cancelRequested set, its worker decides. CANCELED: as it is. SUCCEEDED, FAILED_FINAL:
        JobNotCancelable. Each write is conditional on the status read; a job that moved meanwhile is read again."""
        for _ in range(_MAX_ROUNDS):
            job = self.get(job_id, tenant=tenant)
            if job.status is JobStatus.CANCELED:
                return CancelResult(job, done=True)
            if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED_FINAL):
                raise JobNotCancelable(job)
            if job.status is JobStatus.PROCESSING:
                requested = self._store.request_cancel(job_id, now=self._clock.now())
                if requested is not None:
                    return CancelResult(requested, done=False)
            else:
                now = self._clock.now()
                canceled = self._store.cancel(job_id, now=now, callback_due=job.callback is not None)
                if canceled is not None:
                    if canceled.callback is not None and self._on_callback_due is not None:
                        self._on_callback_due(canceled, JobStatus.CANCELED, now)
                    return CancelResult(canceled, done=True, canceled_now=True)
        raise RuntimeError(f"job {job_id} kept changing during cancel")


def _ours(outcome: CreateOutcome, job: Job) -> bool:
    """Created now, or found already written by this very request (its earlier attempt was stored unanswered)."""
    return outcome.created or outcome.job.request_token == job.request_token


def _ahead(run_at: datetime | None, now: datetime) -> datetime | None:
    """`run_at` while it is still ahead of `now`, else None (the job may start at once)."""
    return run_at if run_at is not None and run_at > now else None


def _fingerprint(request: SubmitRequest) -> str:
    return fingerprint(
        job_type=request.job_type,
        priority=request.priority,
        params=request.params,
        metadata=request.metadata,
        schedule=request.schedule.fingerprint_fields() if request.schedule is not None else None,
        callback_url=request.callback_url,
    )


def _run_all(task: Callable[[list[int]], None], groups: list[list[int]], executor: Executor | None) -> None:
    if executor is None or len(groups) < 2:
        for group in groups:
            task(group)
        return
    # Each task runs in a copy of the caller's context: its log fields and AWS call category come along.
    for future in [executor.submit(contextvars.copy_context().run, task, group) for group in groups]:
        future.result()
