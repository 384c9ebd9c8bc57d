"""The lazy claim's own logic against the in-memory store: which messages run unclaimed, the claim/settle line, and
the claimer's schedule (a fake monotonic clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runtime.domain.hold import Hold
from runtime.domain.job import Job, JobStatus
from runtime.domain.lazy_claim import MAX_READ_AGE_S, ClaimState, JobRead, LazyClaim, read_jobs, runs_unclaimed
from runtime.domain.ports import JobMessage, ReceivedMessage
from runtime.job_types.registry import CancelSignal
from runtime.worker.claimer import LazyClaimer
from tests.unit.fakes import FakeClock, InMemoryJobStore, make_job


def _received(message: JobMessage | None, receive_count: int = 1, handle: str = "rh") -> ReceivedMessage:
    return ReceivedMessage(
        message=message,
        receipt_handle=handle,
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


def test_only_a_first_receive_of_a_submits_message_runs_unclaimed() -> None:
    job = make_job()
    submitted = JobMessage.for_job(job, from_submit=True)
    assert submitted.from_submit and runs_unclaimed(_received(submitted))
    assert not runs_unclaimed(_received(submitted, receive_count=2))
    assert not runs_unclaimed(_received(JobMessage.for_job(job)))  # a retry's or the republisher's
    assert not runs_unclaimed(_received(None))
    # Only a PENDING job due at once has its submit's message marked.
    assert not JobMessage.for_job(job.replace(run_at=datetime(2030, 1, 1, tzinfo=UTC)), from_submit=True).from_submit
    assert not JobMessage.for_job(job.replace(status=JobStatus.FAILED), from_submit=True).from_submit


def test_one_read_per_receive_covers_only_the_messages_that_may_run_unclaimed() -> None:
    store = InMemoryJobStore()
    fresh, redelivered, retried = make_job(job_id="j-fresh"), make_job(job_id="j-again"), make_job(job_id="j-retry")
    for job in (fresh, redelivered, retried):
        store.create(job)
    messages = [
        _received(JobMessage.for_job(fresh, from_submit=True), handle="a"),
        _received(JobMessage.for_job(redelivered, from_submit=True), receive_count=2, handle="b"),
        _received(JobMessage.for_job(retried), handle="c"),
        _received(JobMessage(job_id="j-gone", trace_id="t", from_submit=True), handle="d"),
        _received(None, handle="e"),
    ]
    reads = read_jobs(store, messages, monotonic=100.0)
    assert store.calls.count("get_many") == 1
    assert set(reads) == {"a", "d"}
    assert reads["a"].job == fresh and reads["d"].job is None and reads["d"].settled
    assert read_jobs(store, messages[1:3], monotonic=0.0) == {} and store.calls.count("get_many") == 1


def test_only_a_pending_due_job_read_recently_runs_unclaimed() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    job = make_job()
    assert JobRead(job, read_at=10.0).runnable(now=now, monotonic=10.0 + MAX_READ_AGE_S)
    assert not JobRead(job, read_at=10.0).runnable(now=now, monotonic=10.1 + MAX_READ_AGE_S)  # a stale read
    assert not JobRead(job.replace(run_at=now + timedelta(seconds=1)), 10.0).runnable(now=now, monotonic=10.0)
    for status in (JobStatus.PROCESSING, JobStatus.FAILED, JobStatus.CANCELED):
        read = JobRead(job.replace(status=status), 10.0)
        assert not read.runnable(now=now, monotonic=10.0)
        assert read.settled is (status is JobStatus.CANCELED)
    assert not JobRead(None, 10.0).runnable(now=now, monotonic=10.0)


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
