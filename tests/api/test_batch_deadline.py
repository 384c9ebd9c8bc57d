"""A batch submit over a slow job store (the chaos proxy adds latency to every DynamoDB call between the API and
moto): the batch stops starting writes in time and answers 200 within its deadline with every job's true outcome,
the written jobs 201 (and published), the rest `503 deadline_exceeded` with retryAfter and not created, so re-sending
those creates each job exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest

from benchmarks.chaos_proxy import FaultProxy, FaultRates
from runtime.adapters.dynamodb.codec import item_to_job
from runtime.api.app import build_container, create_app
from runtime.api.errors import DEADLINE_EXCEEDED, NOT_STARTED_DETAIL
from runtime.api.schemas import MAX_BATCH_JOBS
from runtime.settings import Settings, SettingsError
from tests.adapters.resources import AwsResources, create_resources, queue_depth, raw_client, scan_all
from tests.api.conftest import DOCUMENTS_BUCKET, api_settings, bearer, document_params, issue_key, serve

BATCH = "/api/v1/jobs/batch"
# One AWS call may take 1 x (1 + 2) = 3 s: the batch starts writes for its first 7 - 2 x 3 = 1 s, which 100 writes
# of 0.2 s each, 8 at a time, cannot fill (about 2.5 s).
SLOW_STORE_LIMITS: dict[str, Any] = {
    "batch_request_deadline_s": 7.0,
    "api_aws_connect_timeout_s": 1.0,
    "api_aws_read_timeout_s": 2.0,
    "api_aws_max_attempts": 1,
    "batch_write_concurrency": 8,
    "send_linger_s": 0,
}
STORE_LATENCY_S = 0.2
# What a busy test machine may add to a bound before an answer reaches the test.
SLACK_S = 1.0


@dataclass
class SlowStoreApi:
    http: httpx.Client
    proxy: FaultProxy
    resources: AwsResources
    settings: Settings

    def jobs_stored(self) -> int:
        return len(scan_all(raw_client("dynamodb", self.resources.endpoint), self.resources.table_name))

    def messages(self) -> int:
        return queue_depth(raw_client("sqs", self.resources.endpoint), self.resources.queue_url)


@pytest.fixture(scope="module")
def slow_store_api(moto_server: str) -> Iterator[SlowStoreApi]:
    resources = create_resources(moto_server, "batchdl")
    proxy = FaultProxy(moto_server, {"dynamodb": FaultRates(latency=1.0, latency_s=STORE_LATENCY_S)}).start()
    try:
        # The API's AWS calls go through the proxy; the tests look at moto directly.
        settings = api_settings(replace(resources, endpoint=proxy.url), **SLOW_STORE_LIMITS)
        with (
            serve(create_app(container=build_container(settings))) as base_url,
            httpx.Client(base_url=base_url, timeout=60, headers=bearer(issue_key(resources))) as http,
        ):
            assert http.get("/api/v1/jobs/warm-up").status_code == 404  # the API key is read before the latency
            yield SlowStoreApi(http, proxy, resources, settings)
    finally:
        proxy.stop()


def job(n: int) -> dict[str, Any]:
    return {"type": "process_document", "params": document_params(DOCUMENTS_BUCKET), "metadata": {"n": n}}


def test_a_slow_store_answers_200_in_time_with_the_unstarted_jobs_503_and_not_created(
    slow_store_api: SlowStoreApi,
) -> None:
    api = slow_store_api
    jobs = [job(n) for n in range(MAX_BATCH_JOBS)]
    api.proxy.enabled.set()
    try:
        started = time.monotonic()
        answer = api.http.post(BATCH, json={"jobs": jobs})
        elapsed = time.monotonic() - started
    finally:
        api.proxy.enabled.clear()
    assert answer.status_code == 200, answer.text
    assert elapsed < api.settings.batch_request_deadline_s + SLACK_S
    results = answer.json()["results"]
    created = [result for result in results if result["status"] == 201]
    unstarted = [result for result in results if result["status"] == 503]
    assert created and unstarted and len(created) + len(unstarted) == len(jobs), [r["status"] for r in results]
    for result in unstarted:
        assert result == {
            "status": 503,
            "error": DEADLINE_EXCEEDED,
            "detail": NOT_STARTED_DETAIL,
            "retryAfter": result["retryAfter"],
        }
        assert result["retryAfter"] >= 1
    # Nothing stored that was answered 503, and each created job was published as usual.
    assert api.jobs_stored() == len(created)
    assert api.messages() == len(created)
    assert api.proxy.counts["dynamodb latency"] >= len(created)

    # Re-sending only the 503 jobs (as the client does, without idempotency keys here) creates each exactly once.
    pending = [n for n, result in enumerate(results) if result["status"] == 503]
    for _ in range(10):
        if not pending:
            break
        again = api.http.post(BATCH, json={"jobs": [jobs[n] for n in pending]})
        assert again.status_code == 200, again.text
        statuses = [result["status"] for result in again.json()["results"]]
        assert set(statuses) <= {201, 503}, statuses
        pending = [n for n, status in zip(pending, statuses, strict=True) if status == 503]
    assert pending == []
    assert api.jobs_stored() == len(jobs)
    stored = scan_all(raw_client("dynamodb", api.resources.endpoint), api.resources.table_name)
    assert sorted(item_to_job(item).metadata["n"] for item in stored) == list(range(len(jobs)))


def test_a_batch_deadline_must_leave_room_to_start_writes(slow_store_api: SlowStoreApi) -> None:
    # 2 x 1 x (1 + 2) = 6 s before the deadline no write starts: a 6 s deadline would never start one.
    with pytest.raises(SettingsError, match="batch_request_deadline_s 6 s must be above twice"):
        api_settings(slow_store_api.resources, **{**SLOW_STORE_LIMITS, "batch_request_deadline_s": 6.0})


# One AWS call may take 1 x (1 + 3) = 4 s: writes start in the first 10 - 8 = 2 s (about 80 of 0.2 s each, 8 at a
# time), and SendMessageBatch calls of 2.5 s each start only in the first 10 - 4 = 6 s: two of them.
SLOW_QUEUE_LIMITS: dict[str, Any] = {
    **SLOW_STORE_LIMITS,
    "batch_request_deadline_s": 10.0,
    "api_aws_read_timeout_s": 3.0,
}
QUEUE_LATENCY_S = 2.5


def test_a_slow_queue_answers_201_in_time_and_leaves_the_unsent_jobs_to_the_republisher(moto_server: str) -> None:
    resources = create_resources(moto_server, "batchsq")
    proxy = FaultProxy(
        moto_server,
        {
            "dynamodb": FaultRates(latency=1.0, latency_s=STORE_LATENCY_S),
            "sqs": FaultRates(latency=1.0, latency_s=QUEUE_LATENCY_S),
        },
    ).start()
    try:
        settings = api_settings(replace(resources, endpoint=proxy.url), **SLOW_QUEUE_LIMITS)
        with (
            serve(create_app(container=build_container(settings))) as base_url,
            httpx.Client(base_url=base_url, timeout=60, headers=bearer(issue_key(resources))) as http,
        ):
            assert http.get("/api/v1/jobs/warm-up").status_code == 404
            proxy.enabled.set()
            started = time.monotonic()
            answer = http.post(BATCH, json={"jobs": [job(n) for n in range(MAX_BATCH_JOBS)]})
            elapsed = time.monotonic() - started
            proxy.enabled.clear()
    finally:
        proxy.stop()
    # Without the send bound the messages of ~80 jobs (8 calls of 2.5 s) would run past the deadline: 503 for all.
    assert answer.status_code == 200, answer.text
    assert elapsed < settings.batch_request_deadline_s + SLACK_S
    created = [result["job"]["jobId"] for result in answer.json()["results"] if result["status"] == 201]
    stored = {
        item_to_job(item).job_id: item_to_job(item)
        for item in scan_all(raw_client("dynamodb", resources.endpoint), resources.table_name)
    }
    assert sorted(stored) == sorted(created)  # every job answered 201 is stored, none else
    sent = queue_depth(raw_client("sqs", resources.endpoint), resources.queue_url)
    assert 0 < sent < len(created), (sent, len(created))
    # The ones whose message was held back wait with their pending marker: the republisher publishes them.
    assert all(job.status.value == "PENDING" and job.pending_since is not None for job in stored.values())
