"""The worker's decision for one message: claim -> handler -> succeed / fail / fail-final -> message fate."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel, Field

from runtime.domain.backoff import Backoff, Jitter
from runtime.domain.job import JobError, JobStatus
from runtime.domain.lazy_claim import MAX_READ_AGE_S, JobRead
from runtime.domain.ports import ObjectNotFound
from runtime.domain.processing import (
    LEASE_MARGIN_S,
    Action,
    MessageProcessor,
    Outcome,
    ProcessingConfig,
)
from runtime.job_types.confinement import Confinement
from runtime.job_types.registry import JobContext, JobType, PermanentJobError, TransientJobError
from tests.unit.fakes import FakeClock, InMemoryJobStore, InMemoryObjects, make_job, received

VISIBILITY_S = 30


class EchoParams(BaseModel):
    value: int = Field(ge=0)


class Script:
    """A job type whose handler does what the test scripts, one step per run, and records each run."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.runs: list[tuple[int, int]] = []
        self.during: Any = None

    def handler(self, params: EchoParams, ctx: JobContext) -> dict[str, Any]:
        self.runs.append((params.value, ctx.attempt))
        if self.during is not None:
            self.during()
        step = self.steps.pop(0) if self.steps else "ok"
        if isinstance(step, BaseException):
            raise step
        return {"doubled": params.value * 2}

    def registry(self) -> Any:
        job_type = JobType("echo", EchoParams, self.handler, "echo")
        return lambda name: job_type if name == "echo" else None


def processor(store: InMemoryJobStore, script: Script, clock: FakeClock, *, max_attempts: int = 3) -> MessageProcessor:
    return MessageProcessor(
        store=store,
        objects=InMemoryObjects(),
        confinement=Confinement("docs"),
        config=ProcessingConfig(visibility_timeout_s=VISIBILITY_S, max_attempts=max_attempts),
        backoff=Backoff(2.0, 300.0, Jitter.EQUAL, rand=lambda: 0.5),
        clock=clock,
        job_types=script.registry(),
    )


@pytest.fixture
def store() -> InMemoryJobStore:
    fake = InMemoryJobStore()
    fake.create(make_job())
    return fake


def test_success_records_the_result_and_deletes(store: InMemoryJobStore) -> None:
    clock, script = FakeClock(), Script()
    claimed: list[int] = []
    decision = processor(store, script, clock).process(received(), on_claimed=lambda job: claimed.append(job.attempts))
    job = store.jobs["job-1"]
    assert (decision.action, decision.outcome, decision.attempt) == (Action.DELETE, Outcome.SUCCEEDED, 1)
    assert job.status is JobStatus.SUCCEEDED and job.attempts == 1 and job.result == {"doubled": 2}
    assert claimed == [1] and script.runs == [(1, 1)]
    assert job.lease_expires_at is None and job.pending_since is None


def test_permanent_error_is_final_at_once(store: InMemoryJobStore) -> None:
    script = Script(PermanentJobError("source_not_found", "source object not found: s3://b/k"))
    decision = processor(store, script, FakeClock()).process(received())
    job = store.jobs["job-1"]
    assert (decision.action, decision.outcome) == (Action.DELETE, Outcome.FAILED_FINAL)
    assert job.status is JobStatus.FAILED_FINAL and job.attempts == 1
    assert job.error == JobError("source_not_found", "source object not found: s3://b/k", permanent=True)


def test_params_failing_the_model_are_final_and_name_the_field() -> None:
    store = InMemoryJobStore()
    store.create(make_job(params={"value": -5}))
    script = Script()
    decision = processor(store, script, FakeClock()).process(received())
    job = store.jobs["job-1"]
    assert decision.outcome is Outcome.FAILED_FINAL and script.runs == []
    assert job.error is not None and job.error.code == "invalid_params" and "params.value" in job.error.message


def test_missing_object_escaping_a_handler_is_permanent(store: InMemoryJobStore) -> None:
    decision = processor(store, Script(ObjectNotFound("s3://docs/missing.txt")), FakeClock()).process(received())
    job = store.jobs["job-1"]
    assert decision.outcome is Outcome.FAILED_FINAL
    assert (
        job.error is not None and job.error.code == "object_not_found" and "s3://docs/missing.txt" in job.error.message
    )


def test_unknown_job_type_is_final() -> None:
    store = InMemoryJobStore()
    store.create(make_job(job_type="vanished"))
    decision = processor(store, Script(), FakeClock()).process(received())
    assert decision.outcome is Outcome.FAILED_FINAL
    assert store.jobs["job-1"].error == JobError("unknown_job_type", "no job type 'vanished'", permanent=True)


@pytest.mark.parametrize(
    "error", [TransientJobError("upstream_timeout", "upstream timed out"), RuntimeError("connection reset")]
)
def test_transient_error_fails_the_attempt_and_retries_after_backoff(store: InMemoryJobStore, error: Exception) -> None:
    decision = processor(store, Script(error), FakeClock()).process(received())
    job = store.jobs["job-1"]
    # attempt 1: ceiling 2 s, equal jitter with rand 0.5 -> 1.5 s -> 2 s visibility (rounded up)
    assert (decision.action, decision.outcome, decision.delay_s) == (Action.RETRY, Outcome.FAILED, 2)
    assert job.status is JobStatus.FAILED and job.error is not None and not job.error.permanent
    assert job.error.code in {"upstream_timeout", "handler_error"}


def test_transient_then_success_counts_attempts(store: InMemoryJobStore) -> None:
    clock = FakeClock()
    script = Script(TransientJobError("throttled", "slow down"), TransientJobError("throttled", "slow down"), "ok")
    worker = processor(store, script, clock)
    delays = []
    for count in (1, 2, 3):
        decision = worker.process(received(receive_count=count, handle=f"rh-{count}"))
        delays.append(decision.delay_s)
        clock.advance(decision.delay_s)
    job = store.jobs["job-1"]
    assert job.status is JobStatus.SUCCEEDED and job.attempts == 3 and job.error is None
    assert [run[1] for run in script.runs] == [1, 2, 3]
    assert delays[1] > delays[0] and delays[2] == 0  # backoff grows; the success is deleted
    assert set(job.transitions) == {"PENDING", "PROCESSING", "FAILED", "SUCCEEDED"}


def test_a_manual_retry_gets_the_full_attempt_budget_again(store: InMemoryJobStore) -> None:
    clock = FakeClock()
    worker = processor(store, Script(RuntimeError("a"), RuntimeError("b"), RuntimeError("c")), clock, max_attempts=2)
    worker.process(received())
    assert worker.process(received(receive_count=2)).outcome is Outcome.FAILED_FINAL
    assert store.requeue("job-1", now=clock.now()) is not None  # the API's manual retry
    # attempt 3 is the first of the retry's two: a transient failure is retried, not final
    third = worker.process(received(receive_count=1, handle="rh-retry"))
    job = store.jobs["job-1"]
    assert (third.outcome, third.action) == (Outcome.FAILED, Action.RETRY)
    assert job.status is JobStatus.FAILED and job.attempts == 3 and job.retry_base == 2


def test_transient_error_on_the_last_attempt_is_final(store: InMemoryJobStore) -> None:
    worker = processor(store, Script(RuntimeError("a"), RuntimeError("b")), FakeClock(), max_attempts=2)
    first = worker.process(received())
    second = worker.process(received(receive_count=2))
    assert (first.outcome, second.outcome, second.action) == (Outcome.FAILED, Outcome.FAILED_FINAL, Action.DELETE)
    job = store.jobs["job-1"]
    assert job.status is JobStatus.FAILED_FINAL and job.attempts == 2 and job.error is not None
    # The job shows a stable code and a safe sentence; the exception's own text is only for the logs.
    assert job.error.code == "handler_error" and "RuntimeError" not in job.error.message
    assert "trace-job-1" in job.error.message and second.error_detail == "RuntimeError: b"


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED_FINAL])
def test_duplicate_message_for_a_terminal_job_changes_nothing(status: JobStatus) -> None:
    store = InMemoryJobStore()
    store.create(make_job(status=status, attempts=1, pending_since=None))
    before = store.jobs["job-1"]
    script = Script()
    decision = processor(store, script, FakeClock()).process(received(receive_count=4))
    assert (decision.action, decision.outcome) == (Action.DELETE, Outcome.DUPLICATE)
    assert store.jobs["job-1"] == before and script.runs == []


def test_message_for_a_job_under_a_live_lease_is_kept_until_the_lease_ends() -> None:
    clock = FakeClock()
    store = InMemoryJobStore()
    store.create(
        make_job(status=JobStatus.PROCESSING, attempts=1, lease_expires_at=clock.now() + timedelta(seconds=12.2))
    )
    script = Script()
    decision = processor(store, script, clock).process(received(receive_count=2))
    assert (decision.action, decision.outcome) == (Action.KEEP, Outcome.LEASED)
    assert decision.delay_s == 13 + LEASE_MARGIN_S
    assert script.runs == [] and store.jobs["job-1"].attempts == 1


def test_expired_lease_is_taken_over() -> None:
    clock = FakeClock()
    store = InMemoryJobStore()
    store.create(make_job(status=JobStatus.PROCESSING, attempts=1, lease_expires_at=clock.now() - timedelta(seconds=1)))
    script = Script()
    decision = processor(store, script, clock).process(received(receive_count=2))
    assert decision.outcome is Outcome.SUCCEEDED and decision.attempt == 2
    assert script.runs == [(1, 2)] and store.jobs["job-1"].status is JobStatus.SUCCEEDED


def test_missing_job_and_poison_message_are_deleted() -> None:
    store = InMemoryJobStore()
    worker = processor(store, Script(), FakeClock())
    missing = worker.process(received("nope"))
    calls_before = list(store.calls)
    poison = worker.process(received(None, body="not json"))
    assert (missing.action, missing.outcome) == (Action.DELETE, Outcome.MISSING)
    assert (poison.action, poison.outcome) == (Action.DELETE, Outcome.POISON)
    assert store.calls == calls_before  # a poison body never reaches the store


def test_dead_letter_verdict_after_the_lease_expired_wins_and_the_message_is_deleted(
    store: InMemoryJobStore,
) -> None:
    clock = FakeClock()
    script = Script()
    verdict = JobError("dead_lettered", "moved to the dead-letter queue", permanent=True)

    def lease_runs_out_then_verdict() -> None:
        clock.advance(VISIBILITY_S + 1)
        assert store.fail_final("job-1", error=verdict, now=clock.now()) is not None

    script.during = lease_runs_out_then_verdict
    decision = processor(store, script, clock).process(received())
    job = store.jobs["job-1"]
    assert (decision.action, decision.outcome) == (Action.DELETE, Outcome.LOST_CLAIM)
    assert job.status is JobStatus.FAILED_FINAL and job.error == verdict and job.result is None


def test_dead_letter_verdict_under_a_live_lease_changes_nothing_and_the_worker_decides(
    store: InMemoryJobStore,
) -> None:
    clock = FakeClock()
    script = Script()
    verdict = JobError("dead_lettered", "moved to the dead-letter queue", permanent=True)
    refused: list[object] = []
    script.during = lambda: refused.append(store.fail_final("job-1", error=verdict, now=clock.now()))
    decision = processor(store, script, clock).process(received())
    assert refused == [None]
    assert (decision.action, decision.outcome) == (Action.DELETE, Outcome.SUCCEEDED)
    assert store.jobs["job-1"].status is JobStatus.SUCCEEDED


def test_takeover_during_the_run_keeps_the_message_for_the_new_holder(store: InMemoryJobStore) -> None:
    clock = FakeClock()
    script = Script()

    def crash_and_takeover() -> None:
        clock.advance(VISIBILITY_S + 1)
        store.claim("job-1", now=clock.now(), lease_until=clock.now() + timedelta(seconds=VISIBILITY_S))

    script.during = crash_and_takeover
    decision = processor(store, script, clock).process(received())
    assert (decision.action, decision.outcome) == (Action.KEEP, Outcome.LOST_CLAIM)
    job = store.jobs["job-1"]
    assert job.status is JobStatus.PROCESSING and job.attempts == 2  # the first attempt's success was not recorded


def test_store_outage_leaves_the_job_and_retries_the_message_later(store: InMemoryJobStore) -> None:
    store.unavailable = True
    decision = processor(store, Script(), FakeClock()).process(received(receive_count=3))
    store.unavailable = False
    assert (decision.action, decision.outcome) == (Action.RETRY, Outcome.STORE_UNAVAILABLE)
    assert decision.delay_s == 6  # ceiling 8 s at count 3, equal jitter with rand 0.5
    assert store.jobs["job-1"].status is JobStatus.PENDING


class _NoClaims:
    """A ClaimScheduler that never claims (the unit tests' handlers end at once)."""

    def add(self, claim: Any) -> None:
        pass

    def discard(self, claim: Any) -> None:
        pass


def lazy_processor(store: InMemoryJobStore, script: Script, clock: FakeClock) -> MessageProcessor:
    return MessageProcessor(
        store=store,
        objects=InMemoryObjects(),
        confinement=Confinement("docs"),
        config=ProcessingConfig(visibility_timeout_s=VISIBILITY_S, max_attempts=3),
        backoff=Backoff(2.0, 300.0, Jitter.EQUAL, rand=lambda: 0.5),
        clock=clock,
        job_types=script.registry(),
        claimer=_NoClaims(),
    )


def test_a_job_the_read_shows_pending_runs_unclaimed_with_one_write(store: InMemoryJobStore) -> None:
    clock, script = FakeClock(), Script()
    read = JobRead(store.jobs["job-1"], read_at=time.monotonic())
    decision = lazy_processor(store, script, clock).process(received(), read=read)
    assert (decision.action, decision.outcome, decision.attempt) == (Action.DELETE, Outcome.SUCCEEDED, 1)
    assert store.calls[-1:] == ["succeed"] and "claim" not in store.calls and script.runs == [(1, 1)]


def test_a_job_the_read_shows_canceled_is_deleted_unrun_without_a_write(store: InMemoryJobStore) -> None:
    clock, script = FakeClock(), Script()
    canceled = store.cancel("job-1", now=clock.now())
    calls = len(store.calls)
    decision = lazy_processor(store, script, clock).process(received(), read=JobRead(canceled, time.monotonic()))
    assert (decision.action, decision.outcome) == (Action.DELETE, Outcome.DUPLICATE)
    assert script.runs == [] and store.calls[calls:] == []
    missing = lazy_processor(store, script, clock).process(received("job-x"), read=JobRead(None, time.monotonic()))
    assert (missing.action, missing.outcome) == (Action.DELETE, Outcome.MISSING) and script.runs == []


def test_a_read_that_is_stale_or_not_pending_means_a_claim_first(store: InMemoryJobStore) -> None:
    clock, script = FakeClock(), Script()
    # Read PENDING, but the job thread took the message too late to trust it: claimed first.
    stale = JobRead(store.jobs["job-1"], read_at=time.monotonic() - MAX_READ_AGE_S - 1)
    decision = lazy_processor(store, script, clock).process(received(), read=stale)
    assert decision.outcome is Outcome.SUCCEEDED and store.calls.count("claim") == 1
    # Read PROCESSING under someone else's live lease: the claim is refused, the message kept, nothing run.
    other = InMemoryJobStore()
    other.create(make_job())
    leased = other.claim("job-1", now=clock.now(), lease_until=clock.now() + timedelta(seconds=60)).job
    runs = len(script.runs)
    kept = lazy_processor(other, script, clock).process(received(), read=JobRead(leased, time.monotonic()))
    assert (kept.action, kept.outcome) == (Action.KEEP, Outcome.LEASED) and len(script.runs) == runs
