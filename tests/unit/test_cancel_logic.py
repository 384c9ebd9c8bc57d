"""Cancel in the worker's own logic, with fakes: the processor's verdicts when a cancel was requested (noticed
before or after the handler ended, or already set at the claim), the heartbeat setting a job's cancel flag from
its lease renewal, the documented notice bound, and the built-in job types stopping between units of work."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from runtime.domain.job import ALLOWED_TRANSITIONS, TERMINAL_STATUSES, JobStatus, prior_statuses
from runtime.domain.processing import CANCELED_WITHOUT_REQUEST_CODE, Action, Outcome
from runtime.job_types.generate_report import GenerateReportParams, generate_report
from runtime.job_types.registry import CancelSignal, JobCanceled, JobContext
from runtime.job_types.transform_data import TransformDataParams, transform_data
from runtime.settings import CANCEL_CHECK_MAX_S, load_settings
from runtime.worker.heartbeat import Heartbeat
from tests.unit.fakes import FakeClock, FakeQueue, InMemoryJobStore, InMemoryObjects, make_job, received
from tests.unit.test_processing import Script, processor


def test_canceled_is_terminal_and_only_a_manual_retry_leaves_it() -> None:
    assert JobStatus.CANCELED in TERMINAL_STATUSES
    assert ALLOWED_TRANSITIONS[JobStatus.CANCELED] == frozenset({JobStatus.PENDING})
    assert set(prior_statuses(JobStatus.CANCELED)) == {JobStatus.PENDING, JobStatus.FAILED, JobStatus.PROCESSING}
    assert set(prior_statuses(JobStatus.PENDING)) == {JobStatus.FAILED_FINAL, JobStatus.CANCELED}


def store_with_job() -> InMemoryJobStore:
    store = InMemoryJobStore()
    store.create(make_job())
    return store


def request_cancel_during_handler(store: InMemoryJobStore, flag: threading.Event | None) -> Any:
    def during() -> None:
        assert store.request_cancel("job-1", now=FakeClock().now()) is not None
        if flag is not None:
            flag.set()  # what the heartbeat does when its renewal reads the request back

    return during


def test_a_cancel_noticed_before_the_handler_ends_ends_the_job_canceled() -> None:
    store, flag = store_with_job(), CancelSignal()
    script = Script("ok")
    script.during = request_cancel_during_handler(store, flag)
    decision = processor(store, script, FakeClock()).process(received(), cancel_flag=flag)
    assert (decision.action, decision.outcome) == (Action.DELETE, Outcome.CANCELED)
    job = store.jobs["job-1"]
    assert job.status is JobStatus.CANCELED and job.result is None and job.lease_expires_at is None


def test_a_cancel_noticed_before_a_transient_failure_is_not_retried() -> None:
    store, flag = store_with_job(), CancelSignal()
    script = Script(RuntimeError("connection reset"))
    script.during = request_cancel_during_handler(store, flag)
    decision = processor(store, script, FakeClock()).process(received(), cancel_flag=flag)
    assert decision.outcome is Outcome.CANCELED and store.jobs["job-1"].status is JobStatus.CANCELED


def test_a_handler_that_ended_before_the_cancel_was_noticed_keeps_its_outcome() -> None:
    store = store_with_job()
    script = Script("ok")
    script.during = request_cancel_during_handler(store, None)  # requested, not yet seen by a renewal
    decision = processor(store, script, FakeClock()).process(received(), cancel_flag=CancelSignal())
    job = store.jobs["job-1"]
    assert decision.outcome is Outcome.SUCCEEDED and job.status is JobStatus.SUCCEEDED and job.cancel_requested


def test_a_failed_attempt_whose_cancel_was_requested_ends_canceled_at_its_next_claim_unrun() -> None:
    store = store_with_job()
    script = Script(RuntimeError("connection reset"), "ok")
    script.during = request_cancel_during_handler(store, None)
    clock = FakeClock()
    worker = processor(store, script, clock)
    first = worker.process(received())
    assert first.outcome is Outcome.FAILED and store.jobs["job-1"].status is JobStatus.FAILED
    script.during = None
    clock.advance(first.delay_s)
    second = worker.process(received(receive_count=2, handle="rh-2"))
    assert (second.action, second.outcome) == (Action.DELETE, Outcome.CANCELED)
    assert store.jobs["job-1"].status is JobStatus.CANCELED and len(script.runs) == 1


def test_a_message_for_a_canceled_job_is_deleted_without_a_run() -> None:
    store = store_with_job()
    assert store.cancel("job-1", now=FakeClock().now()) is not None
    script = Script()
    decision = processor(store, script, FakeClock()).process(received())
    assert (decision.action, decision.outcome) == (Action.DELETE, Outcome.DUPLICATE) and script.runs == []


def test_job_canceled_without_a_request_is_a_permanent_handler_error() -> None:
    store = store_with_job()
    decision = processor(store, Script(JobCanceled()), FakeClock()).process(received())
    job = store.jobs["job-1"]
    assert decision.outcome is Outcome.FAILED_FINAL
    assert job.error is not None and job.error.code == CANCELED_WITHOUT_REQUEST_CODE and job.error.permanent


def test_the_heartbeat_sets_the_jobs_flag_when_its_lease_renewal_reads_a_request() -> None:
    clock, queue, store = FakeClock(), FakeQueue(), InMemoryJobStore()
    store.create(make_job())
    heartbeat = Heartbeat(
        queue=queue, store=store, clock=clock, visibility_timeout_s=30, interval_s=10, lease_interval_s=5
    )
    heartbeat.track("rh-1", "job-1")
    claim = store.claim("job-1", now=clock.now(), lease_until=clock.now() + timedelta(seconds=30))
    assert claim.job is not None
    heartbeat.claimed("rh-1", claim.job.attempts)
    flag = heartbeat.cancel_flag("rh-1")
    assert flag is not None
    clock.advance(5)
    heartbeat.renew_leases()  # a lease beat between visibility beats: no visibility change
    assert not flag.is_set() and queue.batch_visibility == [] and store.calls.count("extend_lease") == 1
    store.request_cancel("job-1", now=clock.now())
    clock.advance(5)
    heartbeat.beat()
    assert flag.is_set() and queue.batch_visibility == [(("rh-1",), 30)]
    assert store.jobs["job-1"].lease_expires_at == clock.now() + timedelta(seconds=30)


@pytest.mark.parametrize("visibility_s", [2, 30, 60, 90, 300, 43_200])
def test_the_cancel_notice_bound_is_at_most_twelve_seconds_and_divides_the_heartbeat(visibility_s: int) -> None:
    settings = settings_with(visibility_timeout_s=visibility_s)
    beats = settings.heartbeat_interval_s / settings.cancel_check_interval_s
    assert settings.cancel_check_interval_s <= CANCEL_CHECK_MAX_S and abs(beats - round(beats)) < 1e-9
    assert settings.cancel_notice_bound_s <= 2 * CANCEL_CHECK_MAX_S <= 15


def test_the_default_bound_is_ten_seconds() -> None:
    settings = settings_with()
    assert (settings.heartbeat_interval_s, settings.cancel_check_interval_s) == (20, 5)
    assert settings.cancel_notice_bound_s == 10


def settings_with(**overrides: Any) -> Any:
    return load_settings(
        table_name="t",
        access_table_name="a",
        queue_url="http://127.0.0.1/q",
        dead_letter_queue_url="http://127.0.0.1/dlq",
        documents_bucket="docs",
        **overrides,
    )


def canceled_context(objects: InMemoryObjects) -> JobContext:
    flag = CancelSignal()
    flag.set()
    return JobContext(job_id="job-1", attempt=1, trace_id="t", objects=objects, cancel_flag=flag)


def test_builtin_types_stop_between_units_of_work_and_write_nothing() -> None:
    objects = InMemoryObjects()
    report = GenerateReportParams.model_validate(
        {
            "title": "t",
            "rows": [{"k": "a", "v": 1}],
            "group_by": "k",
            "metric": "v",
            "destination": "s3://docs/tenants/acme/r.json",
        }
    )
    transform = TransformDataParams.model_validate(
        {
            "records": [{"a": 1}],
            "operations": [{"op": "limit", "count": 1}],
            "destination": "s3://docs/tenants/acme/t.jsonl",
        }
    )
    with pytest.raises(JobCanceled):
        generate_report(report, canceled_context(objects))
    with pytest.raises(JobCanceled):
        transform_data(transform, canceled_context(objects))
    assert objects.objects == {}


def test_a_cancel_noticed_after_the_handler_returned_does_not_count() -> None:
    # The worker closes the signal the moment the handler returns: a heartbeat that sets it later (the cancel
    # request landed after the handler finished) must not turn a finished job into a CANCELED one.
    signal = CancelSignal()
    assert signal.close() is False
    signal.set()
    assert not signal.is_set()
    noticed = CancelSignal()
    noticed.set()
    assert noticed.close() is True and noticed.is_set()
