"""The lazy claim's own logic against the in-memory store: which messages run unclaimed, the claim/settle line, and
the claimer's schedule (a fake monotonic clock)."""

from __future__ import annotations

from datetime import UTC, datetime

from runtime.domain.hold import Hold
from runtime.domain.job import Job, JobStatus
from runtime.domain.lazy_claim import ClaimState, LazyClaim, runs_unclaimed
from runtime.domain.ports import CarriedJob, JobMessage, ReceivedMessage
from runtime.job_types.registry import CancelSignal
from runtime.worker.claimer import LazyClaimer
from tests.unit.fakes import FakeClock, InMemoryJobStore, make_job


def _received(message: JobMessage | None, receive_count: int = 1) -> ReceivedMessage:
    return ReceivedMessage(
        message=message,
        receipt_handle="rh",
        message_id="m",
        receive_count=receive_count,
        sent_at=datetime.now(UTC),
        trace_header=None,
        raw_body="",
    )


def _lazy(store: InMemoryJobStore, job: Job, hold: Hold | None = None) -> tuple[LazyClaim, CancelSignal, list[Job]]:
    flag, claimed = CancelSignal(), []
    lazy = LazyClaim(
        job=job,
        store=store,
        clock=FakeClock(),
        hold=hold or Hold(),
        lease_s=30,
        cancel_flag=flag,
        on_claimed=claimed.append,
    )
    return lazy, flag, claimed


def test_only_a_first_receive_of_a_message_carrying_its_job_runs_unclaimed() -> None:
    job = make_job()
    carried = JobMessage.for_job(job, carry=True)
    assert carried.carried is not None and runs_unclaimed(_received(carried))
    assert not runs_unclaimed(_received(carried, receive_count=2))
    assert not runs_unclaimed(_received(JobMessage.for_job(job)))  # a retry's or the republisher's
    assert not runs_unclaimed(_received(None))
    # Only a PENDING job due at once carries its fields.
    assert CarriedJob.of(job.replace(run_at=datetime(2030, 1, 1, tzinfo=UTC))) is None
    assert CarriedJob.of(job.replace(status=JobStatus.FAILED)) is None
    rebuilt = carried.carried.job(job_id=job.job_id, trace_id=job.trace_id, priority=job.priority)
    assert (rebuilt.job_type, rebuilt.params, rebuilt.tenant, rebuilt.attempts) == (
        job.job_type,
        job.params,
        job.tenant,
        job.attempts,
    )


def test_a_claim_after_settle_writes_nothing_and_a_settle_after_claim_keeps_the_claim() -> None:
    store = InMemoryJobStore()
    job = make_job()
    store.create(job)
    lazy, _, claimed = _lazy(store, job)
    assert lazy.settle() is ClaimState.SETTLED
    assert lazy.claim() is None and claimed == []
    assert store.jobs[job.job_id].status is JobStatus.PENDING

    other = make_job("job-2")
    store.create(other)
    lazy, flag, claimed = _lazy(store, other)
    assert lazy.claim() == 1 and lazy.claim() == 1  # once
    assert lazy.settle() is ClaimState.CLAIMED and [j.attempts for j in claimed] == [1]
    assert store.jobs[other.job_id].status is JobStatus.PROCESSING and not flag.is_set()


def test_a_refused_claim_tells_the_handler_to_stop_and_a_released_hold_claims_nothing() -> None:
    store = InMemoryJobStore()
    job = make_job()
    store.create(job)
    assert store.cancel(job.job_id, now=FakeClock().now()) is not None
    lazy, flag, claimed = _lazy(store, job)
    assert lazy.claim() is None and flag.is_set() and claimed == []
    assert lazy.settle() is ClaimState.REFUSED and lazy.current is not None
    assert lazy.current.status is JobStatus.CANCELED

    fresh = make_job("job-2")
    store.create(fresh)
    hold = Hold()
    with hold.releasing():
        pass
    lazy, flag, _ = _lazy(store, fresh, hold)
    assert lazy.claim() is None and lazy.settle() is ClaimState.ABANDONED
    assert store.jobs[fresh.job_id].status is JobStatus.PENDING and store.jobs[fresh.job_id].attempts == 0


def test_the_claimer_claims_only_what_outlived_its_threshold() -> None:
    now = [0.0]
    claimer = LazyClaimer(after_s=1.0, monotonic=lambda: now[0])
    store = InMemoryJobStore()
    quick, slow = make_job("quick"), make_job("slow")
    for job in (quick, slow):
        store.create(job)
    quick_claim, _, _ = _lazy(store, quick)
    slow_claim, _, _ = _lazy(store, slow)
    claimer.add(quick_claim)
    claimer.add(slow_claim)
    assert claimer.wait_s() == 1.0
    now[0] = 0.5
    claimer.discard(quick_claim)  # ended before the threshold
    assert claimer.claim_due() == 0
    now[0] = 1.0
    assert claimer.claim_due() == 1 and claimer.wait_s() is None
    assert store.jobs["slow"].status is JobStatus.PROCESSING and store.jobs["quick"].status is JobStatus.PENDING
