"""The worker's background parts with fakes: batched deletes, the heartbeat, the republisher sweep."""

from __future__ import annotations

from datetime import timedelta

from runtime.domain.job import JobError, JobStatus, Priority
from runtime.domain.stats import QueueDepth
from runtime.worker.deleter import BatchDeleter
from runtime.worker.heartbeat import Heartbeat
from runtime.worker.republisher import Republisher
from tests.unit.fakes import FakeClock, FakeQueue, InMemoryJobStore, make_job


def test_deletes_go_out_in_batches_of_at_most_ten() -> None:
    queue = FakeQueue()
    deleter = BatchDeleter(queue, linger_s=3600)  # only a full batch or flush sends
    for index in range(23):
        deleter.add(f"rh-{index}")
    deleter.flush()
    assert queue.deleted == [f"rh-{index}" for index in range(23)]


def test_stop_flushes_what_is_waiting() -> None:
    queue = FakeQueue()
    deleter = BatchDeleter(queue, linger_s=3600)
    deleter.add("rh-1")
    deleter.stop()
    assert queue.deleted == ["rh-1"] and deleter.pending_count() == 0


def test_heartbeat_extends_visibility_of_all_in_flight_and_leases_of_claimed_jobs() -> None:
    clock, queue, store = FakeClock(), FakeQueue(), InMemoryJobStore()
    for index in range(12):
        store.create(make_job(f"job-{index}"))
    heartbeat = Heartbeat(queue=queue, store=store, clock=clock, visibility_timeout_s=30, interval_s=10)
    for index in range(12):
        heartbeat.track(f"rh-{index}", f"job-{index}")
    claim = store.claim("job-3", now=clock.now(), lease_until=clock.now() + timedelta(seconds=30))
    assert claim.job is not None
    heartbeat.claimed("rh-3", claim.job.attempts)
    clock.advance(10)
    heartbeat.beat()
    assert [(len(handles), timeout) for handles, timeout in queue.batch_visibility] == [(10, 30), (2, 30)]
    assert store.jobs["job-3"].lease_expires_at == clock.now() + timedelta(seconds=30)
    assert store.calls.count("extend_lease") == 1  # unclaimed messages have no lease to extend


def test_heartbeat_skips_entries_tracked_for_less_than_one_interval() -> None:
    clock, queue, store = FakeClock(), FakeQueue(), InMemoryJobStore()
    for job_id in ("job-old", "job-new"):
        store.create(make_job(job_id))
    heartbeat = Heartbeat(queue=queue, store=store, clock=clock, visibility_timeout_s=30, interval_s=10)
    heartbeat.track("rh-old", "job-old")
    claim = store.claim("job-old", now=clock.now(), lease_until=clock.now() + timedelta(seconds=30))
    assert claim.job is not None
    heartbeat.claimed("rh-old", claim.job.attempts)
    clock.advance(9.9)
    heartbeat.track("rh-new", "job-new")
    clock.advance(0.1)
    heartbeat.beat()
    assert queue.batch_visibility == [(("rh-old",), 30)]
    assert store.calls.count("extend_lease") == 1
    clock.advance(10)
    heartbeat.beat()  # one interval later the young one is due too
    assert queue.batch_visibility[-1] == (("rh-old", "rh-new"), 30)


def test_heartbeat_with_only_young_entries_makes_no_request() -> None:
    clock, queue, store = FakeClock(), FakeQueue(), InMemoryJobStore()
    heartbeat = Heartbeat(queue=queue, store=store, clock=clock, visibility_timeout_s=30, interval_s=10)
    heartbeat.track("rh-1", "job-1")
    clock.advance(0.1)
    heartbeat.beat()
    assert queue.batch_visibility == [] and store.calls == []


def test_heartbeat_stops_extending_a_lease_it_lost() -> None:
    clock, queue, store = FakeClock(), FakeQueue(), InMemoryJobStore()
    store.create(make_job())
    claim = store.claim("job-1", now=clock.now(), lease_until=clock.now() + timedelta(seconds=30))
    assert claim.job is not None
    heartbeat = Heartbeat(queue=queue, store=store, clock=clock, visibility_timeout_s=30, interval_s=10)
    heartbeat.track("rh-1", "job-1")
    heartbeat.claimed("rh-1", claim.job.attempts)
    clock.advance(31)  # the lease ran out (a stalled process): the dead-letter verdict takes the job
    assert store.fail_final("job-1", error=JobError("dead_lettered", "x"), now=clock.now()) is not None
    heartbeat.beat()
    heartbeat.beat()
    assert store.calls.count("extend_lease") == 1
    assert store.jobs["job-1"].status is JobStatus.FAILED_FINAL


def test_republisher_sends_only_stale_pending_jobs_once() -> None:
    clock, queue, store = FakeClock(), FakeQueue(), InMemoryJobStore()
    store.create(make_job("stale", pending_since=clock.now() - timedelta(seconds=120)))
    store.create(make_job("fresh", pending_since=clock.now() - timedelta(seconds=5)))
    store.create(make_job("running", status=JobStatus.PROCESSING, pending_since=None))
    republisher = Republisher(store=store, queue=queue, clock=clock, republish_after_s=60, interval_s=15)
    assert republisher.sweep() == 1
    assert [(m.job_id, m.trace_id) for m in queue.sent] == [("stale", "trace-stale")]
    assert store.jobs["stale"].pending_since == clock.now()  # the marker moved: not sent again next round
    assert republisher.sweep() == 0


class FixedDepths:
    def __init__(self, visible: int) -> None:
        self.visible = visible
        self.reads = 0

    def depths(self) -> list[QueueDepth]:
        self.reads += 1
        return [QueueDepth(priority=Priority.NORMAL, visible=self.visible, in_flight=0, delayed=0)]


def test_republisher_leaves_jobs_behind_a_backlog_until_the_long_bound_or_the_queues_drain() -> None:
    clock, queue, store = FakeClock(), FakeQueue(), InMemoryJobStore()
    store.create(make_job("behind", pending_since=clock.now() - timedelta(seconds=120)))
    store.create(make_job("long-lost", pending_since=clock.now() - timedelta(seconds=901)))
    store.create(
        make_job(
            "due-later", pending_since=clock.now() - timedelta(seconds=120), run_at=clock.now() + timedelta(seconds=300)
        )
    )
    depths = FixedDepths(visible=400)
    republisher = Republisher(
        store=store, queue=queue, clock=clock, republish_after_s=60, interval_s=15, depths=depths, backlog_after_s=900
    )
    # 400 messages wait: only the job past the long bound goes again, and the scheduled release is never held back.
    assert republisher.sweep() == 2
    assert sorted(message.job_id for message in queue.sent) == ["due-later", "long-lost"]
    depths.visible = 0  # the queues drained: the usual bound applies again
    assert republisher.sweep() == 1 and queue.sent[-1].job_id == "behind"


def test_republisher_reads_the_queue_depths_only_when_a_job_is_stale() -> None:
    clock, queue, store = FakeClock(), FakeQueue(), InMemoryJobStore()
    store.create(make_job("fresh", pending_since=clock.now() - timedelta(seconds=5)))
    depths = FixedDepths(visible=0)
    republisher = Republisher(store=store, queue=queue, clock=clock, republish_after_s=60, interval_s=15, depths=depths)
    assert republisher.sweep() == 0 and depths.reads == 0


def test_republisher_send_failure_is_retried_on_a_later_sweep() -> None:
    clock, queue, store = FakeClock(), FakeQueue(fail_send=True), InMemoryJobStore()
    store.create(make_job("stale", pending_since=clock.now() - timedelta(seconds=120)))
    republisher = Republisher(store=store, queue=queue, clock=clock, republish_after_s=60, interval_s=15)
    assert republisher.sweep() == 0
    queue.fail_send = False
    clock.advance(61)
    assert republisher.sweep() == 1 and queue.sent[0].job_id == "stale"


def test_republisher_sweeps_within_its_interval() -> None:
    republisher = Republisher(
        store=InMemoryJobStore(),
        queue=FakeQueue(),
        clock=FakeClock(),
        republish_after_s=60,
        interval_s=15,
        rand=lambda: 0.999,
    )
    assert 12 <= republisher._next_wait_s() <= 15
