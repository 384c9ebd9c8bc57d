"""The client's own logic against a scripted transport: retries and their deadline, Retry-After, idempotency keys
kept across retries, error mapping, paging, batches and waiting."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

import jobtickets
from jobtickets import (
    ConnectionFailed,
    Forbidden,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidCursor,
    Job,
    JobNotCancelable,
    JobNotFound,
    JobNotRetryable,
    JobRequest,
    JobTicketsClient,
    JobTicketsError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    UnknownJobType,
    ValidationFailed,
    WaitTimeout,
)
from jobtickets._core import parse_retry_after
from tests.clients.fake_service import FakeTime, Script, answer, error, job_json

URL = "http://service.test"


def make_client(script: Script, time: FakeTime, **options: float) -> JobTicketsClient:
    return JobTicketsClient(URL, "jt_key", transport=script.transport(), clock=time.clock, sleep=time.sleep, **options)


def test_submit_sends_the_contract_body_with_a_generated_key_and_bearer_token() -> None:
    script = Script([answer(201, job_json(), {"Location": "/api/v1/jobs/job-1"})])
    time = FakeTime()
    with make_client(script, time) as client:
        job = client.submit(
            "transform_data",
            {"records": [{"a": 1}]},
            priority="high",
            metadata={"m": 1},
            run_at=datetime(2026, 12, 2, 5, 0, tzinfo=timezone(timedelta(hours=1))),
            callback_url="https://hooks.example/x",
        )
    [request] = script.requests
    assert request.method == "POST" and request.url.path == "/api/v1/jobs"
    assert request.headers["Authorization"] == "Bearer jt_key"
    assert request.headers["Idempotency-Key"].startswith("jobtickets-")
    assert script.bodies()[0] == {
        "type": "transform_data",
        "params": {"records": [{"a": 1}]},
        "priority": "high",
        "metadata": {"m": 1},
        "runAt": "2026-12-02T04:00:00Z",
        "callbackUrl": "https://hooks.example/x",
    }
    assert job.job_id == "job-1" and job.status == "PENDING" and job.tenant == "t1"


def test_each_logical_submit_gets_its_own_key() -> None:
    script = Script([answer(201, job_json("a")), answer(201, job_json("b"))])
    with make_client(script, FakeTime()) as client:
        client.submit("t", {"x": 1})
        client.submit("t", {"x": 1})
    keys = [request.headers["Idempotency-Key"] for request in script.requests]
    assert keys[0] != keys[1]


def test_submit_retries_503_and_in_flight_with_the_same_key_honouring_retry_after() -> None:
    script = Script(
        [
            error(503, "job_store_unavailable", headers={"Retry-After": "2"}),
            httpx.ConnectError("connection refused"),
            error(409, "idempotency_key_in_flight", headers={"Retry-After": "1"}),
            answer(200, job_json(status="PROCESSING"), {"Idempotent-Replayed": "true"}),
        ]
    )
    time = FakeTime()
    with make_client(script, time) as client:
        job = client.submit("transform_data", {"records": []})
    assert job.status == "PROCESSING"
    assert len({request.headers["Idempotency-Key"] for request in script.requests}) == 1
    assert len(script.requests) == 4
    assert time.sleeps[0] == 2 and time.sleeps[2] == 1  # Retry-After honoured exactly
    assert 0.25 <= time.sleeps[1] <= 0.5  # no Retry-After: backoff, second retry of the call


def test_the_callers_key_is_sent_as_given() -> None:
    script = Script([answer(201, job_json())])
    with make_client(script, FakeTime()) as client:
        client.submit("t", {"x": 1}, idempotency_key="order-42")
    assert script.requests[0].headers["Idempotency-Key"] == "order-42"


def test_rate_limits_back_off_exponentially_then_give_up_at_the_deadline() -> None:
    script = Script([error(429, "too_many_requests") for _ in range(50)])
    time = FakeTime()
    client = make_client(script, time, deadline_s=10.0, backoff_base_s=0.5, backoff_max_s=4.0)
    with client, pytest.raises(RateLimited) as caught:
        client.get("job-1")
    assert caught.value.status == 429
    assert sum(time.sleeps) < 10.0  # never sleeps past the deadline
    assert len(script.requests) == len(time.sleeps) + 1
    caps = [min(4.0, 0.5 * 2**index) for index in range(len(time.sleeps))]
    assert all(cap / 2 <= slept <= cap for slept, cap in zip(time.sleeps, caps, strict=True))


def test_a_zero_retry_after_still_waits_a_little() -> None:
    script = Script([error(503, "overloaded", headers={"Retry-After": "0"}), answer(200, job_json())])
    time = FakeTime()
    with make_client(script, time) as client:
        client.get("job-1")
    assert time.sleeps == [0.05]


def test_a_retry_after_beyond_the_deadline_fails_at_once() -> None:
    script = Script([error(503, "job_store_unavailable", headers={"Retry-After": "60"})])
    time = FakeTime()
    with make_client(script, time, deadline_s=5.0) as client, pytest.raises(ServiceUnavailable) as caught:
        client.get("job-1")
    assert time.sleeps == [] and caught.value.retry_after == 60


def test_connection_failures_end_in_connection_failed_after_the_deadline() -> None:
    script = Script([httpx.ConnectError("refused") for _ in range(100)])
    time = FakeTime()
    with make_client(script, time, deadline_s=3.0) as client, pytest.raises(ConnectionFailed) as caught:
        client.get("job-1")
    assert caught.value.status is None and caught.value.code == "connection_failed"
    assert "refused" in caught.value.detail
    assert len(script.requests) > 2 and sum(time.sleeps) < 3.0


def test_a_broken_connection_is_retried_only_for_idempotent_calls() -> None:
    script = Script([httpx.ReadError("reset"), answer(200, job_json())])
    with make_client(script, FakeTime()) as client:
        assert client.cancel("job-1").job_id == "job-1"  # cancel twice is cancel once
    script = Script([httpx.ReadError("reset")])
    with make_client(script, FakeTime()) as client, pytest.raises(ConnectionFailed):
        client.retry("job-1")  # the first may have gone through: not re-sent
    assert len(script.requests) == 1


def test_a_503_deadline_exceeded_is_resent_only_when_that_is_harmless() -> None:
    late = error(503, "deadline_exceeded", headers={"Retry-After": "1"})
    script = Script([late, answer(200, job_json())])
    with make_client(script, FakeTime()) as client:
        assert client.submit("t", {"x": 1}).job_id == "job-1"  # keyed: a replay if the first went through
    script = Script([late])
    with make_client(script, FakeTime()) as client, pytest.raises(ServiceUnavailable) as caught:
        client.retry("job-1")  # may have been carried out: not re-sent
    assert caught.value.code == "deadline_exceeded" and len(script.requests) == 1
    script = Script([error(503, "overloaded", headers={"Retry-After": "1"}), answer(200, job_json())])
    with make_client(script, FakeTime()) as client:
        assert client.retry("job-1").job_id == "job-1"  # refused before any work: safe to re-send


def test_a_client_error_is_not_retried() -> None:
    script = Script([error(404, "job_not_found", "jobId: no job with id 'nope'", {"X-Trace-Id": "trace-9"})])
    time = FakeTime()
    with make_client(script, time) as client, pytest.raises(JobNotFound) as caught:
        client.get("nope")
    assert (caught.value.status, caught.value.code, caught.value.detail) == (
        404,
        "job_not_found",
        "jobId: no job with id 'nope'",
    )
    assert caught.value.trace_id == "trace-9"
    assert time.sleeps == []


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, "unauthorized", Unauthorized),
        (403, "forbidden", Forbidden),
        (404, "job_not_found", JobNotFound),
        (404, "not_found", NotFound),
        (409, "job_not_retryable", JobNotRetryable),
        (409, "job_not_cancelable", JobNotCancelable),
        (413, "payload_too_large", PayloadTooLarge),
        (422, "idempotency_key_reused", IdempotencyKeyReused),
        (422, "invalid_cursor", InvalidCursor),
        (422, "unknown_job_type", UnknownJobType),
        (422, "validation_error", ValidationFailed),
        (422, "invalid_json", ValidationFailed),
        (422, "some_new_code", ValidationFailed),  # a new code still lands in its status' family
        (500, "internal_error", ServerError),
        (502, "http_502", ServerError),
    ],
)
def test_errors_are_typed_by_code_then_status(status: int, code: str, kind: type[JobTicketsError]) -> None:
    script = Script([error(status, code, "the detail")])
    with make_client(script, FakeTime()) as client, pytest.raises(kind) as caught:
        client.get("job-1")
    assert type(caught.value) is kind
    assert (caught.value.status, caught.value.code, caught.value.detail) == (status, code, "the detail")


def test_in_flight_is_typed_when_the_deadline_leaves_no_room_to_retry() -> None:
    script = Script([error(409, "idempotency_key_in_flight", headers={"Retry-After": "9"})])
    with make_client(script, FakeTime(), deadline_s=1.0) as client, pytest.raises(IdempotencyKeyInFlight):
        client.submit("t", {"x": 1})


def test_validation_errors_carry_the_field_problems_and_known_types() -> None:
    body = {"error": "unknown_job_type", "detail": "type: unknown job type 'x'", "knownTypes": ["a", "b"]}
    script = Script([answer(422, body), answer(422, {**body, "error": "validation_error", "errors": [{"field": "f"}]})])
    with make_client(script, FakeTime()) as client:
        with pytest.raises(UnknownJobType) as unknown:
            client.submit("x", {"y": 1})
        with pytest.raises(ValidationFailed) as invalid:
            client.submit("x", {"y": 1})
    assert unknown.value.known_types == ["a", "b"]
    assert invalid.value.errors == [{"field": "f"}]


def test_a_non_json_error_page_is_still_a_typed_error() -> None:
    script = Script([httpx.Response(502, text="<html>bad gateway</html>")])
    with make_client(script, FakeTime()) as client, pytest.raises(ServerError) as caught:
        client.get("job-1")
    assert caught.value.code == "http_502" and caught.value.detail == "bad gateway"


def test_list_follows_next_cursor_over_every_page() -> None:
    script = Script(
        [
            answer(200, {"items": [job_json("a"), job_json("b")], "nextCursor": "c1"}),
            answer(200, {"items": [job_json("c")], "nextCursor": "c2"}),
            answer(200, {"items": [], "nextCursor": None}),
        ]
    )
    with make_client(script, FakeTime()) as client:
        ids = [job.job_id for job in client.list(status="SUCCEEDED", type="transform_data", page_size=2)]
    assert ids == ["a", "b", "c"]
    params = [dict(request.url.params) for request in script.requests]
    assert params[0] == {"limit": "2", "status": "SUCCEEDED", "type": "transform_data"}
    assert params[1]["cursor"] == "c1" and params[2]["cursor"] == "c2"


def test_list_is_lazy() -> None:
    script = Script([answer(200, {"items": [job_json("a")], "nextCursor": "c1"})])
    with make_client(script, FakeTime()) as client:
        assert next(iter(client.list())).job_id == "a"
    assert len(script.requests) == 1


def test_job_ids_are_escaped_in_paths() -> None:
    script = Script([error(404, "job_not_found")])
    with make_client(script, FakeTime()) as client, pytest.raises(JobNotFound):
        client.get("a/../b")
    assert script.requests[0].url.raw_path == b"/api/v1/jobs/a%2F..%2Fb"


def test_submit_many_gives_per_item_results_and_resends_only_the_unhandled_items() -> None:
    first = {
        "results": [
            {"status": 201, "job": job_json("a")},
            {"status": 409, "error": "idempotency_key_in_flight", "detail": "busy", "retryAfter": 3},
            {"status": 422, "error": "idempotency_key_reused", "detail": "idempotencyKey: reused"},
        ]
    }
    second = {"results": [{"status": 200, "job": job_json("b")}]}
    script = Script([answer(200, first), answer(200, second)])
    time = FakeTime()
    jobs = [
        JobRequest("t", {"n": 1}),
        JobRequest("t", {"n": 2}, delay_seconds=30),
        JobRequest("t", {"n": 3}, idempotency_key="k3"),
    ]
    with make_client(script, time) as client:
        results = client.submit_many(jobs)
    assert [(r.index, r.status, r.ok) for r in results] == [(0, 201, True), (1, 200, True), (2, 422, False)]
    assert isinstance(results[2].error, IdempotencyKeyReused) and results[2].error.detail == "idempotencyKey: reused"
    assert results[0].created and not results[1].created
    sent, resent = script.bodies()
    assert [item["params"]["n"] for item in sent["jobs"]] == [1, 2, 3]
    assert sent["jobs"][1]["delaySeconds"] == 30 and sent["jobs"][2]["idempotencyKey"] == "k3"
    assert resent["jobs"] == [sent["jobs"][1]]  # the same item, with the same generated key
    assert time.sleeps == [3]


def test_submit_many_splits_into_batches_of_one_hundred() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        items = httpx.Response(200, content=request.content).json()["jobs"]
        return answer(200, {"results": [{"status": 201, "job": job_json(item["idempotencyKey"])} for item in items]})

    script = Script([echo, echo, echo])
    with make_client(script, FakeTime()) as client:
        results = client.submit_many([JobRequest("t", {"n": n}) for n in range(250)])
    assert [len(body["jobs"]) for body in script.bodies()] == [100, 100, 50]
    assert [r.job.job_id for r in results if r.job] == [r.idempotency_key for r in results]
    assert len({r.idempotency_key for r in results}) == 250


def test_wait_polls_until_terminal_reporting_progress_changes_only() -> None:
    def progress(fraction: float, message: str) -> dict[str, object]:
        return {"fraction": fraction, "message": message, "updatedAt": "2026-12-02T03:00:02.000Z"}

    script = Script(
        [
            answer(200, job_json(), {"Retry-After": "1"}),
            answer(200, job_json(status="PROCESSING", progress=progress(0.2, "reading")), {"Retry-After": "2"}),
            answer(200, job_json(status="PROCESSING", progress=progress(0.2, "reading")), {"Retry-After": "2"}),
            answer(200, job_json(status="PROCESSING", progress=progress(0.6, "writing"))),
            answer(200, job_json(status="SUCCEEDED", result={"ok": True}, progress=progress(1.0, "done"))),
        ]
    )
    time = FakeTime()
    seen_progress: list[tuple[float, str | None]] = []
    seen_status: list[str] = []
    with make_client(script, time) as client:
        job = client.wait(
            "job-1",
            timeout=60,
            on_progress=lambda job: seen_progress.append((job.progress.fraction, job.progress.message)),
            on_status=lambda job: seen_status.append(job.status),
            poll_min_s=0.5,
        )
    assert job.status == "SUCCEEDED" and job.result == {"ok": True}
    assert seen_progress == [(0.2, "reading"), (0.6, "writing"), (1.0, "done")]
    assert seen_status == ["PENDING", "PROCESSING", "SUCCEEDED"]
    assert time.sleeps == [1, 2, 2, 0.5]  # Retry-After when given, else the backoff's first step


def test_wait_times_out_with_the_last_job_seen() -> None:
    script = Script([answer(200, job_json(status="PROCESSING"), {"Retry-After": "2"}) for _ in range(10)])
    time = FakeTime()
    with make_client(script, time) as client, pytest.raises(WaitTimeout) as caught:
        client.wait("job-1", timeout=5)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.job.status == "PROCESSING"
    assert sum(time.sleeps) == pytest.approx(5)  # the last sleep is cut to the time left


def test_job_model_tolerates_missing_and_unknown_fields() -> None:
    job = Job.from_dict({"jobId": "j", "status": "NEW_STATE", "somethingNew": {"x": 1}})
    assert job.status == "NEW_STATE" and not job.is_terminal
    assert job.progress is None and job.callback is None and job.run_at is None and job.created_at is None
    assert job.raw["somethingNew"] == {"x": 1}
    full = Job.from_dict(
        job_json(
            status="CANCELED",
            runAt="2026-12-02T04:00:00Z",
            cancelRequested=True,
            progress={"fraction": 0.5, "message": None, "updatedAt": "2026-12-02T03:00:02.000Z"},
            callback={"url": "https://h/x", "state": "delivered", "attempts": 2, "lastStatusCode": 204},
            error={"code": "canceled", "message": "asked", "permanent": True},
        )
    )
    assert full.is_terminal and full.cancel_requested
    assert full.run_at == datetime(2026, 12, 2, 4, 0, tzinfo=UTC)
    assert full.progress is not None and full.progress.fraction == 0.5
    assert full.callback == jobtickets.Callback("https://h/x", "delivered", 2, 204)
    assert full.error is not None and full.error.permanent
    assert full.transitions["PENDING"] == datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def test_job_request_refuses_naive_times_and_both_schedules() -> None:
    with pytest.raises(ValueError, match="naive"):
        JobRequest("t", {"x": 1}, run_at=datetime(2026, 12, 2)).body()
    with pytest.raises(ValueError, match="not both"):
        JobRequest("t", {"x": 1}, run_at="2026-12-02T04:00:00Z", delay_seconds=5).body()


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="deadline_s"):
        JobTicketsClient(URL, "k", deadline_s=0)
    with pytest.raises(ValueError, match="api_key"):
        JobTicketsClient(URL, "")


def stored_apart(content: bytes, **extra: object) -> dict[str, object]:
    ref = {"uri": "s3://docs/tenants/t1/results/job-1.json", "size": len(content)}
    return job_json(status="SUCCEEDED", resultRef={**ref, "sha256": hashlib.sha256(content).hexdigest()}, **extra)


def test_a_result_stored_apart_is_downloaded_without_the_api_key_and_checked() -> None:
    content = b'{"rows":[1,2,3]}'
    url = "https://storage.test/results/job-1.json?X-Amz-Signature=abc"
    script = Script([answer(200, stored_apart(content, resultUrl=url)), httpx.Response(200, content=content)])
    with make_client(script, FakeTime()) as client:
        job = client.get("job-1")
        assert job.result is None and job.result_ref is not None and job.result_ref.size == len(content)
        assert client.fetch_result(job) == {"rows": [1, 2, 3]}
    download = script.requests[1]
    assert str(download.url) == url and "Authorization" not in download.headers


def test_fetch_result_gets_a_fresh_url_first_and_refuses_a_corrupt_download() -> None:
    content = b'{"rows":[1,2,3]}'
    listed = Job.from_dict(stored_apart(content))  # as list shows it: no resultUrl
    fresh = stored_apart(content, resultUrl="https://storage.test/r.json")
    script = Script([answer(200, fresh), httpx.Response(200, content=b'{"rows":[6,6,6]}')])
    with make_client(script, FakeTime()) as client, pytest.raises(JobTicketsError) as caught:
        client.fetch_result(listed)
    assert [request.url.host for request in script.requests] == ["service.test", "storage.test"]
    assert caught.value.code == "result_corrupt" and "sha256" in caught.value.detail


def test_fetch_result_returns_an_inline_result_without_a_request() -> None:
    script = Script([])
    with make_client(script, FakeTime()) as client:
        assert client.fetch_result(Job.from_dict(job_json(status="SUCCEEDED", result={"ok": 1}))) == {"ok": 1}
        assert client.fetch_result(Job.from_dict(job_json())) is None
