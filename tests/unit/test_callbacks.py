"""Callback logic with fakes: which addresses are internal, the signature, the retry schedule, one delivery's
decisions (hop, retry, give up, skip) and the outbox."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from datetime import timedelta

import pytest

from runtime.callbacks.addresses import CallbackTarget, CallbackUrlPolicy, UnsafeCallbackUrl, is_internal
from runtime.callbacks.delivery import CallbackDeliverer, DeliveryOutcome
from runtime.callbacks.outbox import CallbackOutbox
from runtime.domain.callbacks import (
    Callback,
    CallbackState,
    RetrySchedule,
    event_id,
    signature_header,
    verify_signature,
)
from runtime.domain.job import JobStatus
from runtime.domain.ports import CallbackMessage
from tests.unit.fakes import FakeCallbackQueue, FakeClock, InMemoryJobStore, make_job

DAY_S = 86_400


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "224.0.0.1",
        "240.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo
    ],
)
def test_internal_addresses(address: str) -> None:
    assert is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert not is_internal(ipaddress.ip_address(address))


def policy(answers: dict[str, list[str]], *, loopback: bool = False) -> CallbackUrlPolicy:
    return CallbackUrlPolicy(allow_loopback_http=loopback, resolver=lambda host, _port: answers[host])


def test_the_checked_target_connects_to_the_address_that_was_checked() -> None:
    target = policy({"hooks.example.com": ["93.184.216.34"]}).check("https://hooks.example.com/a/b?c=d")
    assert target == CallbackTarget("https", "hooks.example.com", 443, "/a/b?c=d", "93.184.216.34")


def test_one_internal_answer_among_public_ones_refuses_the_host() -> None:
    with pytest.raises(UnsafeCallbackUrl, match=r"10\.0\.0\.9"):
        policy({"h.example.com": ["93.184.216.34", "10.0.0.9"]}).check("http://h.example.com/")


def test_loopback_passes_only_over_http_and_only_where_allowed() -> None:
    answers = {"localhost": ["127.0.0.1", "::1"]}
    assert policy(answers, loopback=True).check("http://localhost:8080/x").address == "127.0.0.1"
    with pytest.raises(UnsafeCallbackUrl):
        policy(answers, loopback=False).check("http://localhost:8080/x")
    with pytest.raises(UnsafeCallbackUrl):
        policy(answers, loopback=True).check("https://localhost:8080/x")
    with pytest.raises(UnsafeCallbackUrl):  # allowing loopback never lets private addresses through
        policy({}, loopback=True).check("http://10.0.0.1/")


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def failing(host: str, port: int) -> list[str]:
        raise OSError("nxdomain")

    with pytest.raises(UnsafeCallbackUrl, match="does not resolve"):
        CallbackUrlPolicy(allow_loopback_http=False, resolver=failing).check("http://gone.example.com/")


def test_the_signature_is_an_hmac_of_timestamp_dot_body() -> None:
    body = b'{"event":"job.succeeded"}'
    header = signature_header("whsec_abc", 1_700_000_000, body)
    expected = hmac.new(b"whsec_abc", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify_signature("whsec_abc", header, body, now_s=1_700_000_010)
    assert not verify_signature("whsec_abc", header, body + b" ", now_s=1_700_000_010)
    assert not verify_signature("whsec_other", header, body, now_s=1_700_000_010)
    assert not verify_signature("whsec_abc", header, body, now_s=1_700_001_000)  # too old: a replay


def test_the_default_schedule_retries_within_30_s_grows_to_hourly_and_lasts_a_day() -> None:
    schedule = RetrySchedule(base_s=15, max_s=3600, window_s=DAY_S)
    delays = [schedule.delay_s(n) for n in range(1, 12)]
    assert delays[0] <= 30
    assert delays == sorted(delays) and delays[-1] == 3600
    assert any(delay > 900 for delay in delays)  # longer than one SQS delay: chained hops
    assert sum(schedule.delay_s(n) for n in range(1, schedule.attempts_within_window())) >= DAY_S
    assert not schedule.gives_up(first_attempt_s=0, now_s=DAY_S - 1)
    assert schedule.gives_up(first_attempt_s=0, now_s=DAY_S)


class Secrets:
    def get_webhook_secret(self, tenant: str) -> str | None:
        return "whsec_test" if tenant == "acme" else None


class Poster:
    def __init__(self, statuses: list[int | None]) -> None:
        self.statuses = statuses
        self.posts: list[tuple[CallbackTarget, bytes, Mapping[str, str]]] = []

    def __call__(self, target: CallbackTarget, body: bytes, headers: Mapping[str, str]) -> int | None:
        self.posts.append((target, body, headers))
        return self.statuses.pop(0)


def terminal_job(store: InMemoryJobStore, clock: FakeClock) -> str:
    job = make_job(tenant="acme", callback=Callback(url="https://hooks.example.com/x"))
    store.create(job)
    claimed = store.claim(job.job_id, now=clock.now(), lease_until=clock.now() + timedelta(seconds=30))
    assert claimed.claimed
    assert store.succeed(job.job_id, attempt=1, result={"ok": True}, now=clock.now(), callback_due=True)
    return job.job_id


def deliverer(
    store: InMemoryJobStore, queue: FakeCallbackQueue, clock: FakeClock, poster: Poster, schedule: RetrySchedule
) -> CallbackDeliverer:
    return CallbackDeliverer(
        store=store,
        queue=queue,
        secrets=Secrets(),
        policy=policy({"hooks.example.com": ["93.184.216.34"]}),
        poster=poster,
        schedule=schedule,
        clock=clock,
    )


def test_a_failed_attempt_queues_the_next_one_and_a_long_delay_hops() -> None:
    store, queue, clock = InMemoryJobStore(), FakeCallbackQueue(), FakeClock()
    job_id = terminal_job(store, clock)
    job = store.jobs[job_id]
    poster = Poster([500, None])
    subject = deliverer(store, queue, clock, poster, RetrySchedule(base_s=600, max_s=3600, window_s=DAY_S))
    first = CallbackMessage(job_id=job_id, event_id=event_id(job), trace_id=job.trace_id)
    assert subject.deliver(first) is DeliveryOutcome.RETRY
    retry, delay = queue.sent[-1]
    assert delay == 600 and retry.not_before is None and retry.first_attempt_at == int(clock.now().timestamp())
    assert store.jobs[job_id].callback == Callback(
        url="https://hooks.example.com/x", state=CallbackState.PENDING, attempts=1, last_status_code=500
    )
    clock.advance(600)
    assert subject.deliver(retry) is DeliveryOutcome.RETRY  # no answer this time
    hop, delay = queue.sent[-1]
    assert delay == 900 and hop.not_before == int(clock.now().timestamp()) + 1200  # 1200 s: two SQS delays
    clock.advance(900)
    assert subject.deliver(hop) is DeliveryOutcome.HOP  # 300 s early: sent on, no POST
    assert len(poster.posts) == 2 and queue.sent[-1] == (hop, 300)
    assert store.jobs[job_id].callback == Callback(
        url="https://hooks.example.com/x", state=CallbackState.PENDING, attempts=2, last_status_code=None
    )


def test_the_attempt_after_the_window_ends_failed_and_a_later_duplicate_is_skipped() -> None:
    store, queue, clock = InMemoryJobStore(), FakeCallbackQueue(), FakeClock()
    job_id = terminal_job(store, clock)
    job = store.jobs[job_id]
    subject = deliverer(store, queue, clock, Poster([503, 200]), RetrySchedule(base_s=15, max_s=3600, window_s=DAY_S))
    start = int(clock.now().timestamp())
    late = CallbackMessage(job_id=job_id, event_id=event_id(job), first_attempt_at=start - DAY_S)
    assert subject.deliver(late) is DeliveryOutcome.FAILED
    assert store.jobs[job_id].callback is not None and store.jobs[job_id].callback.state is CallbackState.FAILED
    assert queue.sent == []
    assert subject.deliver(late) is DeliveryOutcome.SKIPPED


def test_signed_headers_and_body_of_a_delivery() -> None:
    store, queue, clock = InMemoryJobStore(), FakeCallbackQueue(), FakeClock()
    job_id = terminal_job(store, clock)
    job = store.jobs[job_id]
    poster = Poster([200])
    subject = deliverer(store, queue, clock, poster, RetrySchedule(base_s=15, max_s=3600, window_s=DAY_S))
    assert subject.deliver(CallbackMessage(job_id=job_id, event_id=event_id(job))) is DeliveryOutcome.DELIVERED
    target, body, headers = poster.posts[0]
    assert target.address == "93.184.216.34" and target.host == "hooks.example.com"
    assert headers["Job-Tickets-Event-Id"] == event_id(job)
    assert verify_signature("whsec_test", headers["Job-Tickets-Signature"], body, now_s=clock.now().timestamp())
    assert b'"event":"job.succeeded"' in body and job_id.encode() in body


def test_an_event_superseded_by_a_manual_retry_is_skipped() -> None:
    store, queue, clock = InMemoryJobStore(), FakeCallbackQueue(), FakeClock()
    job_id = terminal_job(store, clock)
    stale = CallbackMessage(job_id=job_id, event_id="not-this-event")
    poster = Poster([])
    subject = deliverer(store, queue, clock, poster, RetrySchedule(base_s=15, max_s=3600, window_s=DAY_S))
    assert subject.deliver(stale) is DeliveryOutcome.SKIPPED and poster.posts == []


def test_a_tenant_without_a_webhook_secret_gets_no_unsigned_post() -> None:
    store, queue, clock = InMemoryJobStore(), FakeCallbackQueue(), FakeClock()
    job = make_job(tenant="nosecret", callback=Callback(url="https://hooks.example.com/x"))
    store.create(job)
    assert store.claim(job.job_id, now=clock.now(), lease_until=clock.now() + timedelta(seconds=30)).claimed
    assert store.succeed(job.job_id, attempt=1, result={}, now=clock.now(), callback_due=True)
    poster = Poster([])
    subject = deliverer(store, queue, clock, poster, RetrySchedule(base_s=15, max_s=3600, window_s=DAY_S))
    message = CallbackMessage(job_id=job.job_id, event_id=event_id(store.jobs[job.job_id]))
    assert subject.deliver(message) is DeliveryOutcome.RETRY and poster.posts == []


def test_an_enqueue_that_fails_is_left_to_the_sweep() -> None:
    store, queue, clock = InMemoryJobStore(), FakeCallbackQueue(fail_send=True), FakeClock()
    job_id = terminal_job(store, clock)
    outbox = CallbackOutbox(store=store, queue=queue, clock=clock)
    entered = store.jobs[job_id].transitions[JobStatus.SUCCEEDED.value]
    assert not outbox.enqueue(store.jobs[job_id], status=JobStatus.SUCCEEDED, entered_at=entered)
    assert job_id in store.outbox
    queue.fail_send = False
    clock.advance(61)
    assert outbox.sweep(older_than=clock.now() - timedelta(seconds=60), limit=10) == 1
    assert [message.job_id for message, _ in queue.sent] == [job_id] and store.outbox == {}
    assert queue.sent[0][0].event_id == event_id(store.jobs[job_id])
