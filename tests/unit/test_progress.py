"""Progress reports: validation, the per-job write throttle (a fake clock), the writer's conditional writes and its
failures, and the last value stored with the outcome."""

from __future__ import annotations

import json
import math
import time
from datetime import timedelta
from typing import Any

import pytest

from runtime.domain.job import JobStatus, Progress
from runtime.domain.processing import Outcome
from runtime.domain.progress import (
    MAX_PROGRESS_MESSAGE_CHARS,
    PROGRESS_INTERVAL_S,
    ProgressReport,
    ProgressThrottle,
    checked_progress,
)
from runtime.job_types.registry import JobContext, TransientJobError
from runtime.settings import load_settings
from runtime.worker.progress import ProgressWriter
from tests.unit.fakes import T0, FakeClock, InMemoryJobStore, InMemoryObjects, make_job, received
from tests.unit.worker_support import Params, echo_processor


def at(seconds: float) -> Progress:
    return Progress(fraction=min(1.0, seconds / 100), message=f"at {seconds}", updated_at=T0)


@pytest.mark.parametrize("fraction", [-0.01, 1.01, math.nan, math.inf, True, "0.5", None])
def test_a_fraction_outside_0_to_1_or_not_a_number_is_refused_naming_it(fraction: Any) -> None:
    with pytest.raises(ValueError, match="progress fraction") as caught:
        checked_progress(fraction, None, T0)
    assert repr(fraction) in str(caught.value)


def test_a_message_is_a_short_string_or_none() -> None:
    assert checked_progress(0, None, T0) == Progress(0.0, None, T0)
    assert checked_progress(1, "", T0).message is None
    long = checked_progress(0.5, "x" * 1000, T0).message
    assert long is not None and len(long) == MAX_PROGRESS_MESSAGE_CHARS and long.endswith("...")
    with pytest.raises(ValueError, match="progress message must be a string"):
        checked_progress(0.5, 42, T0)


def test_the_first_write_waits_an_interval_after_the_first_report_then_at_most_one_per_interval() -> None:
    throttle: ProgressThrottle[str] = ProgressThrottle(PROGRESS_INTERVAL_S)
    assert throttle.wait_s(0.0) is None  # nothing reported: the writer sleeps until told
    assert throttle.reported("a", at(1), 0.0) is True
    assert throttle.wait_s(0.0) == pytest.approx(2.0)  # a job that ends before then costs no progress write
    assert throttle.due(1.9) == []
    assert throttle.due(2.0) == [("a", at(1))]
    assert throttle.wait_s(2.1) is None  # written, nothing new
    # Many reports within the interval: one write, of the last one, when the interval is over.
    assert throttle.reported("a", at(2), 2.5) is True  # the writer must learn when it is next due
    for step in range(3, 50):
        assert throttle.reported("a", at(step), 2.6) is False
    assert throttle.due(3.9) == []
    assert throttle.wait_s(3.5) == pytest.approx(0.5)
    assert throttle.due(4.0) == [("a", at(49))]
    assert throttle.due(100.0) == []  # unchanged since: no write


def test_jobs_are_throttled_each_on_its_own_and_a_forgotten_job_is_never_written() -> None:
    throttle: ProgressThrottle[str] = ProgressThrottle(2.0)
    throttle.reported("a", at(1), 0.0)
    assert throttle.due(2.0) == [("a", at(1))]
    throttle.reported("b", at(2), 1.0)
    throttle.reported("a", at(3), 1.0)
    assert throttle.due(3.0) == [("b", at(2))]  # a was written at 2.0: due again at 4.0
    assert throttle.wait_s(3.0) == pytest.approx(1.0)
    throttle.forget("a")
    assert throttle.wait_s(3.0) is None and throttle.due(10.0) == []


def test_a_job_that_ends_within_an_interval_of_its_first_report_costs_no_progress_write() -> None:
    writer, store, monotonic, _ = writer_with_job()
    report = writer.open("job-1", 1)
    for step in range(1, 11):
        report.report(step / 10, f"step {step}")
    monotonic.now = 1.9
    assert writer.write_due() == 0
    assert writer.close(report) == Progress(1.0, "step 10", T0)  # the last value goes with the outcome
    monotonic.now = 10.0
    assert writer.write_due() == 0 and "set_progress" not in store.calls


class Monotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def writer_with_job(attempts: int = 1) -> tuple[ProgressWriter, InMemoryJobStore, Monotonic, FakeClock]:
    store = InMemoryJobStore()
    store.create(make_job(status=JobStatus.PROCESSING, attempts=attempts))
    clock, monotonic = FakeClock(), Monotonic()
    return ProgressWriter(store=store, clock=clock, interval_s=2.0, monotonic=monotonic), store, monotonic, clock


def test_the_writer_stores_the_latest_report_at_most_once_per_interval() -> None:
    writer, store, monotonic, clock = writer_with_job()
    report = writer.open("job-1", 1)
    report.report(0.1, "started")
    assert writer.write_due() == 0  # not before an interval has passed since the first report
    monotonic.now = 2.0
    assert writer.write_due() == 1
    job = store.jobs["job-1"]
    assert job.progress == Progress(0.1, "started", T0) and job.status is JobStatus.PROCESSING
    for step in range(2, 9):
        clock.advance(0.1)
        report.report(step / 10, f"step {step}")
    monotonic.now = 3.0
    assert writer.write_due() == 0
    monotonic.now = 4.0
    assert writer.write_due() == 1
    assert store.jobs["job-1"].progress == Progress(0.8, "step 8", T0 + timedelta(seconds=0.7))
    assert store.calls.count("set_progress") == 2
    assert writer.close(report) == Progress(0.8, "step 8", T0 + timedelta(seconds=0.7))
    report.report(0.9)  # after close (the handler's thread still running): never written
    monotonic.now = 10.0
    assert writer.write_due() == 0


def test_a_write_for_a_job_no_longer_this_attempts_is_refused_and_not_tried_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    writer, store, monotonic, _ = writer_with_job(attempts=2)  # another worker's attempt holds it
    report = writer.open("job-1", 1)
    report.report(0.5)
    monotonic.now = 2.0
    assert writer.write_due() == 1
    assert store.jobs["job-1"].progress is None
    report.report(0.6)
    monotonic.now = 7.0
    assert writer.write_due() == 0
    assert '"progress_write_refused"' in capsys.readouterr().out


def test_a_failed_write_is_logged_and_the_handler_never_sees_it(capsys: pytest.CaptureFixture[str]) -> None:
    writer, store, monotonic, _ = writer_with_job()
    report = writer.open("job-1", 1)
    store.unavailable = True
    report.report(0.5, "half")
    monotonic.now = 2.0
    assert writer.write_due() == 1  # tried, failed, logged
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "progress_write_failed" in line]
    assert len(lines) == 1 and lines[0]["level"] == "warning" and lines[0]["jobId"] == "job-1"
    assert "JobStoreUnavailable" in lines[0]["error"]
    store.unavailable = False
    monotonic.now = 4.0  # tried again an interval after the failed try
    assert writer.write_due() == 1
    assert store.jobs["job-1"].progress is not None and store.jobs["job-1"].progress.message == "half"


def test_the_writer_thread_writes_a_report_without_the_handler_waiting() -> None:
    store = InMemoryJobStore()
    store.create(make_job(status=JobStatus.PROCESSING, attempts=1))
    writer = ProgressWriter(store=store, clock=FakeClock(), interval_s=2.0)
    writer.start()
    try:
        report = writer.open("job-1", 1)
        report.report(0.25, "a quarter")
        for _ in range(500):  # bounded wait for the background write; not a speed target
            if store.jobs["job-1"].progress is not None:
                break
            time.sleep(0.01)
        assert store.jobs["job-1"].progress == Progress(0.25, "a quarter", T0)
    finally:
        writer.stop()


def test_the_last_report_is_stored_with_the_outcome_and_a_new_attempt_starts_without_one() -> None:
    store = InMemoryJobStore()
    store.create(make_job())
    runs: list[int] = []

    def handler(params: Params, ctx: JobContext) -> dict[str, Any]:
        runs.append(ctx.attempt)
        ctx.report_progress(0.3, "a third")
        if ctx.attempt == 1:
            raise TransientJobError("busy", "try later")
        assert store.jobs["job-1"].progress is None  # the claim dropped the failed attempt's
        ctx.report_progress(1.0, "done")
        return {}

    processor = echo_processor(store, handler)
    assert processor.process(received()).outcome is Outcome.FAILED
    failed = store.jobs["job-1"]
    assert failed.status is JobStatus.FAILED and failed.progress is not None and failed.progress.message == "a third"
    assert processor.process(received()).outcome is Outcome.SUCCEEDED
    done = store.jobs["job-1"]
    assert done.progress == Progress(1.0, "done", T0) and runs == [1, 2]


def test_a_bad_fraction_fails_the_attempt_as_a_handler_error() -> None:
    store = InMemoryJobStore()
    store.create(make_job())

    def handler(params: Params, ctx: JobContext) -> dict[str, Any]:
        ctx.report_progress(1.5)
        return {}

    decision = echo_processor(store, handler).process(received())
    assert decision.outcome is Outcome.FAILED and decision.error_detail is not None
    assert "progress fraction must be from 0.0 to 1.0, got 1.5" in decision.error_detail


def test_the_interval_setting_defaults_to_the_contract_bound_and_never_goes_below_it() -> None:
    base = {
        "table_name": "t",
        "access_table_name": "a",
        "queue_url": "q",
        "dead_letter_queue_url": "d",
        "documents_bucket": "b",
    }
    assert load_settings(**base).progress_interval_s == PROGRESS_INTERVAL_S == 2.0
    with pytest.raises(Exception, match="JOBS_PROGRESS_INTERVAL_S"):
        load_settings(**base, progress_interval_s=1.0)


def test_a_context_built_without_a_worker_keeps_the_latest_report() -> None:
    report = ProgressReport(FakeClock())
    context = JobContext(job_id="j", attempt=1, trace_id="t", objects=InMemoryObjects(), progress=report)
    context.report_progress(0.5, "half")
    context.report_progress(0.75)
    assert report.latest == Progress(0.75, None, T0)


def test_an_attempt_running_unclaimed_is_claimed_before_its_first_progress_write() -> None:
    # runtime/domain/lazy_claim.py: the writer asks the attempt's claim first; it writes under the attempt the claim
    # gives, and nothing when the claim was refused.
    store = InMemoryJobStore()
    store.create(make_job())  # PENDING: the attempt runs unclaimed
    clock, monotonic = FakeClock(), Monotonic()
    writer = ProgressWriter(store=store, clock=clock, interval_s=2.0, monotonic=monotonic)
    asked: list[str] = []

    def claim() -> int | None:
        asked.append("claim")
        claimed = store.claim("job-1", now=clock.now(), lease_until=clock.now() + timedelta(seconds=30))
        return claimed.job.attempts if claimed.claimed and claimed.job is not None else None

    report = writer.open("job-1", 1, claim=claim)
    report.report(0.5, "half")
    monotonic.now = 2.0
    assert writer.write_due() == 1
    assert asked == ["claim"] and store.jobs["job-1"].status is JobStatus.PROCESSING
    assert store.jobs["job-1"].progress == Progress(0.5, "half", T0)

    store.create(make_job("job-2"))
    assert store.cancel("job-2", now=clock.now()) is not None
    refused = writer.open("job-2", 1, claim=lambda: None)
    refused.report(0.5)
    monotonic.now = 4.0
    writer.write_due()
    assert store.jobs["job-2"].progress is None and "set_progress" not in store.calls[store.calls.index("cancel") :]
