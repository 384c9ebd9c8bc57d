"""The schedule rules over fakes: parsing runAt, the delay window and the pending marker, the fingerprint, submit
and retry of scheduled jobs, the republisher's release, and the worker's refusal of a job before its runAt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from runtime.domain.backoff import Backoff, Jitter
from runtime.domain.fingerprint import fingerprint
from runtime.domain.job import JobStatus
from runtime.domain.processing import Action, MessageProcessor, Outcome, ProcessingConfig
from runtime.domain.schedule import (
    MAX_SCHEDULE_AHEAD_S,
    DelayWindow,
    ScheduleRejected,
    ScheduleRequest,
    parse_run_at,
    publish_delay_s,
)
from runtime.domain.submit import JobService
from runtime.job_types.confinement import Confinement
from runtime.settings import SettingsError, load_settings
from runtime.worker.republisher import Republisher
from tests.unit.fakes import T0, FakeClock, FakeQueue, InMemoryJobStore, InMemoryObjects, make_job, received
from tests.unit.job_service_support import IN_FLIGHT_S, RETRY_REPUBLISH_AFTER_S, request, service_of

WINDOW = DelayWindow(900)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T12:00:00Z", T0),
        ("2026-01-01t12:00:00z", T0),
        ("2026-01-01T13:30:00+01:30", T0),
        ("2026-01-01T12:00:00.123456789Z", T0.replace(microsecond=123_000)),
        ("2026-01-01T07:00:00.5-05:00", T0.replace(microsecond=500_000)),
    ],
)
def test_rfc3339_moments_parse_to_utc_milliseconds(text: str, expected: datetime) -> None:
    assert parse_run_at(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01T12:00:00",
        "2026-01-01",
        "2026-01-01 12:00:00Z",
        "2026-W01-1T12:00:00Z",
        "20260101T120000Z",
        "2026-01-01T12:00Z",
        "١٢",
    ],
)
def test_moments_without_a_timezone_or_not_rfc3339_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rfc 3339"):
        parse_run_at(text)


def test_a_run_at_too_far_ahead_is_refused_and_a_past_one_means_now() -> None:
    limit = T0 + timedelta(seconds=MAX_SCHEDULE_AHEAD_S)
    assert ScheduleRequest(run_at=limit).run_at_from(T0) == limit
    with pytest.raises(ScheduleRejected) as refused:
        ScheduleRequest(run_at=limit + timedelta(milliseconds=1)).run_at_from(T0)
    assert refused.value.field == "runAt"
    assert ScheduleRequest(run_at=T0 - timedelta(days=3)).run_at_from(T0) == T0
    assert ScheduleRequest(delay_s=30).run_at_from(T0) == T0 + timedelta(seconds=30)
    with pytest.raises(ValueError):
        ScheduleRequest(run_at=T0, delay_s=1)


def test_the_window_decides_between_a_delayed_message_and_the_republisher() -> None:
    assert WINDOW.message_delay_s(None, T0) == 0
    assert WINDOW.message_delay_s(T0 + timedelta(seconds=899.2), T0) == 900  # rounded up: never early
    assert WINDOW.message_delay_s(T0 + timedelta(seconds=900.2), T0) is None
    assert WINDOW.message_delay_s(T0 - timedelta(seconds=5), T0) == 0
    assert WINDOW.pending_marker(None, T0) == T0
    assert WINDOW.pending_marker(T0 + timedelta(seconds=60), T0) == T0 + timedelta(seconds=60)
    far = T0 + timedelta(hours=5)
    assert WINDOW.pending_marker(far, T0) == far - timedelta(seconds=900)
    # The send follows the marker written with the job, even when the clock crossed into the window meanwhile.
    assert publish_delay_s(far, far - timedelta(seconds=900), far - timedelta(seconds=899)) is None
    assert publish_delay_s(far, far, far - timedelta(seconds=10)) == 10


def test_the_fingerprint_of_an_unscheduled_submit_is_unchanged_and_schedules_count() -> None:
    plain = fingerprint(job_type="t", priority="normal", params={"a": 1}, metadata={})
    # The value stored for keys submitted before scheduling existed.
    assert plain == fingerprint(job_type="t", priority="normal", params={"a": 1}, metadata={}, schedule=None)
    delayed = ScheduleRequest(delay_s=60).fingerprint_fields()
    at = ScheduleRequest(run_at=parse_run_at("2026-01-01T13:00:00+01:00")).fingerprint_fields()
    assert at == ScheduleRequest(run_at=T0).fingerprint_fields()
    prints = {plain} | {
        fingerprint(job_type="t", priority="normal", params={"a": 1}, metadata={}, schedule=fields)
        for fields in (delayed, at)
    }
    assert len(prints) == 3


def service(store: InMemoryJobStore, queue: FakeQueue, clock: FakeClock) -> JobService:
    return service_of(store, queue, clock, delay_window=WINDOW)


def test_submit_sends_a_delayed_message_or_holds_the_job_back() -> None:
    store, queue, clock = InMemoryJobStore(), FakeQueue(), FakeClock()
    jobs = service(store, queue, clock)
    soon = jobs.submit(request("a", schedule=ScheduleRequest(delay_s=120)))
    later = jobs.submit(request("b", schedule=ScheduleRequest(delay_s=7200)))
    assert soon.published and later.published
    assert [(message.job_id, message.delay_s) for message in queue.sent] == [(soon.job.job_id, 120)]
    assert soon.job.run_at == soon.job.pending_since == T0 + timedelta(seconds=120)
    assert later.job.pending_since == T0 + timedelta(seconds=7200 - 900)

    many = jobs.submit_many(
        [request(None, schedule=ScheduleRequest(delay_s=5)), request(None, schedule=ScheduleRequest(delay_s=5000))]
    )
    assert all(not isinstance(result, Exception) and result.published for result in many)
    assert [message.delay_s for message in queue.sent[1:]] == [5]


def test_a_replay_needs_the_same_schedule() -> None:
    store, queue, clock = InMemoryJobStore(), FakeQueue(), FakeClock()
    jobs = service(store, queue, clock)
    first = jobs.submit(request("k", schedule=ScheduleRequest(delay_s=60)))
    clock.advance(IN_FLIGHT_S + 1)
    again = jobs.submit(request("k", schedule=ScheduleRequest(delay_s=60)))
    assert not again.created and again.job.job_id == first.job.job_id and again.job.run_at == first.job.run_at
    assert len(queue.sent) == 1


def test_a_canceled_scheduled_job_retried_before_its_run_at_keeps_it() -> None:
    store, queue, clock = InMemoryJobStore(), FakeQueue(), FakeClock()
    jobs = service(store, queue, clock)
    job = jobs.submit(request("k", schedule=ScheduleRequest(delay_s=3600))).job
    jobs.cancel(job.job_id, tenant="acme")
    clock.advance(60)
    retried = jobs.retry(job.job_id, tenant="acme")
    assert retried.job.status is JobStatus.PENDING and retried.job.run_at == job.run_at
    assert retried.job.pending_since == job.pending_since and queue.sent == []  # held back again
    clock.advance(3600)
    jobs.cancel(job.job_id, tenant="acme")
    retried = jobs.retry(job.job_id, tenant="acme")
    assert [message.delay_s for message in queue.sent] == [0] and retried.job.pending_since == clock.now()


def test_the_republisher_releases_a_held_job_with_the_delay_left_and_skips_canceled_ones() -> None:
    store, queue, clock = InMemoryJobStore(), FakeQueue(), FakeClock()
    run_at = T0 + timedelta(seconds=2000)
    store.create(make_job("held", run_at=run_at, pending_since=WINDOW.pending_marker(run_at, T0)))
    store.create(make_job("gone", status=JobStatus.CANCELED, run_at=run_at, pending_since=None))
    republisher = Republisher(
        store=store, queue=queue, clock=clock, republish_after_s=60, interval_s=15, delay_window=WINDOW
    )
    clock.advance(2000 - 900 + 30)  # inside the window, not yet republish_after_s past the marker
    assert republisher.sweep() == 0
    clock.advance(31)
    assert republisher.sweep() == 1
    assert [(message.job_id, message.delay_s) for message in queue.sent] == [("held", 839)]
    assert store.jobs["held"].pending_since == run_at  # lost now, it is published again after its runAt
    clock.advance(839 + 61)
    assert republisher.sweep() == 1 and queue.sent[-1].delay_s == 0


def test_a_job_whose_marker_is_early_only_gets_its_marker_moved() -> None:
    store, queue, clock = InMemoryJobStore(), FakeQueue(), FakeClock()
    run_at = T0 + timedelta(hours=3)
    store.create(make_job("early", run_at=run_at, pending_since=T0 - timedelta(minutes=5)))
    republisher = Republisher(
        store=store, queue=queue, clock=clock, republish_after_s=60, interval_s=15, delay_window=WINDOW
    )
    assert republisher.sweep() == 0 and queue.sent == []
    assert store.jobs["early"].pending_since == run_at - timedelta(seconds=900)


def test_the_worker_refuses_a_job_before_its_run_at_and_asks_for_a_fresh_message() -> None:
    store, clock = InMemoryJobStore(), FakeClock()
    store.create(make_job("job-1", run_at=T0 + timedelta(seconds=2.5)))
    processor = MessageProcessor(
        store=store,
        objects=InMemoryObjects(),
        confinement=Confinement("docs"),
        config=ProcessingConfig(visibility_timeout_s=30, max_attempts=3, delay_window_s=900),
        backoff=Backoff(1.0, 2.0, Jitter.EQUAL),
        clock=clock,
    )
    decision = processor.process(received("job-1"))
    assert (decision.action, decision.outcome, decision.delay_s) == (Action.REPUBLISH, Outcome.NOT_DUE, 3)
    assert store.jobs["job-1"].attempts == 0 and store.jobs["job-1"].status is JobStatus.PENDING


def test_offsets_other_than_utc_are_shown_in_utc() -> None:
    moment = parse_run_at(datetime(2026, 1, 1, 7, 0, tzinfo=timezone(timedelta(hours=-5))).isoformat())
    assert moment == T0 and moment.tzinfo == UTC


def test_the_republish_bound_must_stay_inside_the_delay_window() -> None:
    required = {
        "table_name": "t",
        "access_table_name": "a",
        "queue_url": "q",
        "dead_letter_queue_url": "d",
        "documents_bucket": "b",
    }
    assert load_settings(**required, schedule_delay_window_s=3, republish_after_s=1, republish_interval_s=1)
    with pytest.raises(SettingsError, match="schedule_delay_window_s"):
        load_settings(**required, republish_after_s=890, republish_interval_s=15)
    with pytest.raises(SettingsError, match="JOBS_SCHEDULE_DELAY_WINDOW_S"):
        load_settings(**required, schedule_delay_window_s=901)


def test_a_retry_of_a_job_waiting_for_its_run_at_publishes_nothing_until_it_is_overdue() -> None:
    store, queue, clock = InMemoryJobStore(), FakeQueue(), FakeClock()
    jobs = service(store, queue, clock)
    job = jobs.submit(request("k", schedule=ScheduleRequest(delay_s=120))).job
    clock.advance(30)
    assert not jobs.retry(job.job_id, tenant="acme").published and len(queue.sent) == 1
    clock.advance(90 + RETRY_REPUBLISH_AFTER_S + 1)  # its message is overdue: published again, due at once
    assert jobs.retry(job.job_id, tenant="acme").published
    assert [message.delay_s for message in queue.sent] == [120, 0]
