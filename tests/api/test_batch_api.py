"""POST /api/v1/jobs/batch over HTTP on the moto server: item-by-item answers with the single-submit rules,
replays, SendMessageBatch of ten, tenant confinement, the route's own body limit and the store/queue outages."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.api.schemas import MAX_BATCH_JOBS
from runtime.domain.job import Job
from runtime.domain.ports import CreateOutcome
from runtime.observability import aws_calls
from tests.adapters.resources import (
    AwsResources,
    create_resources,
    queue_depth,
    raw_client,
)
from tests.api.conftest import (
    DOCS_PREFIX,
    TENANT,
    LiveApi,
    bearer,
    document_params,
    issue_key,
    outage_client,
)

BATCH = "/api/v1/jobs/batch"


def item(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"type": "process_document", "params": document_params("docs")}
    document.update(changes)
    return document


def submit_calls() -> dict[str, int]:
    return dict(aws_calls.snapshot().get("submit", {}))


def grew(before: dict[str, int], after: dict[str, int], call: str) -> int:
    return after.get(call, 0) - before.get(call, 0)


def test_mixed_items_answer_one_by_one_in_order(live_api: LiveApi, http: httpx.Client) -> None:
    depth = live_api.queue_depth()
    jobs = [
        item(metadata={"n": 0}),
        item(type="no_such_type"),
        item(params={"source": DOCS_PREFIX + "in.txt"}),  # destination missing
        item(priority="urgent"),
        "not an object",
        item(idempotencyKey=""),
        item(idempotencyKey=7),
        item(priority="high", metadata={"n": 7}),
    ]
    response = http.post(BATCH, json={"jobs": jobs})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [result["status"] for result in results] == [201, 422, 422, 422, 422, 422, 422, 201]
    assert results[0]["job"]["metadata"] == {"n": 0} and results[7]["job"]["priority"] == "high"
    assert results[1]["error"] == "unknown_job_type" and "no_such_type" in results[1]["detail"]
    assert results[2]["error"] == "validation_error" and results[2]["detail"].startswith("params.destination:")
    assert results[3]["detail"].startswith("priority:")
    assert results[4]["detail"] == "body: must be a json object, got str"
    assert results[5]["error"] == "invalid_idempotency_key" and results[5]["detail"].startswith("idempotencyKey:")
    assert results[6]["detail"] == "idempotencyKey: must be a string, got int"
    for created in (results[0], results[7]):
        job = created["job"]
        assert job["status"] == "PENDING" and job["tenant"] == TENANT
        assert job["traceId"] == response.headers["X-Trace-Id"]
        assert http.get(f"/api/v1/jobs/{job['jobId']}").json() == job  # read-your-writes
    assert live_api.queue_depth() == depth + 2


def test_a_replayed_batch_returns_the_same_jobs_and_sends_nothing(live_api: LiveApi, http: httpx.Client) -> None:
    keys = [f"batch-{uuid.uuid4()}" for _ in range(5)]
    jobs = [item(idempotencyKey=key, metadata={"i": i}) for i, key in enumerate(keys)]
    first = http.post(BATCH, json={"jobs": jobs}).json()["results"]
    assert [result["status"] for result in first] == [201] * 5
    # Within the in-flight window a repeat is 409, as for a single submit; after it, the same jobs come back.
    in_flight = http.post(BATCH, json={"jobs": jobs}).json()["results"]
    assert {result["status"] for result in in_flight} == {409}
    assert in_flight[0]["error"] == "idempotency_key_in_flight" and in_flight[0]["retryAfter"] >= 1
    live_api.clock.advance(live_api.settings.submit_in_flight_s + 1)
    depth, items = live_api.queue_depth(), live_api.item_count()
    again = http.post(BATCH, json={"jobs": jobs}).json()["results"]
    assert [result["status"] for result in again] == [200] * 5
    assert [result["job"]["jobId"] for result in again] == [result["job"]["jobId"] for result in first]
    # A single submit with one of the keys replays the batch's job too: one set of rules.
    single = http.post("/api/v1/jobs", json=item(metadata={"i": 0}), headers={"Idempotency-Key": keys[0]})
    assert single.status_code == 200 and single.json()["jobId"] == first[0]["job"]["jobId"]
    reused = http.post(BATCH, json={"jobs": [item(idempotencyKey=keys[1], metadata={"i": "other"})]})
    assert reused.json()["results"][0]["status"] == 422
    assert reused.json()["results"][0]["error"] == "idempotency_key_reused"
    assert (live_api.queue_depth(), live_api.item_count()) == (depth, items)


def test_a_key_twice_in_one_batch_is_a_replay_of_the_first(live_api: LiveApi, http: httpx.Client) -> None:
    key = f"twice-{uuid.uuid4()}"
    depth = live_api.queue_depth()
    results = http.post(
        BATCH,
        json={
            "jobs": [
                item(idempotencyKey=key),
                item(idempotencyKey=key),
                item(idempotencyKey=key, metadata={"other": True}),
            ]
        },
    ).json()["results"]
    assert [result["status"] for result in results] == [201, 200, 422]
    assert results[1]["job"]["jobId"] == results[0]["job"]["jobId"]
    assert results[2]["error"] == "idempotency_key_reused"
    assert live_api.queue_depth() == depth + 1


def test_a_hundred_jobs_take_ten_send_message_batches_and_a_hundred_conditional_puts(
    live_api: LiveApi, http: httpx.Client
) -> None:
    depth = live_api.queue_depth()
    before = submit_calls()
    response = http.post(BATCH, json={"jobs": [item(metadata={"i": i}) for i in range(MAX_BATCH_JOBS)]})
    after = submit_calls()
    results = response.json()["results"]
    assert [result["status"] for result in results] == [201] * MAX_BATCH_JOBS
    assert [result["job"]["metadata"]["i"] for result in results] == list(range(MAX_BATCH_JOBS))
    assert len({result["job"]["jobId"] for result in results}) == MAX_BATCH_JOBS
    assert grew(before, after, "sqs.SendMessageBatch") == 10
    assert grew(before, after, "sqs.SendMessage") == 0
    assert grew(before, after, "dynamodb.PutItem") == MAX_BATCH_JOBS
    assert live_api.queue_depth() == depth + MAX_BATCH_JOBS


def test_items_belong_to_the_caller_and_s3_outside_the_prefix_is_that_items_422(
    live_api: LiveApi, http: httpx.Client
) -> None:
    other_tenant = document_params("docs", tenant="tenant-b")
    results = http.post(
        BATCH,
        json={
            "jobs": [
                item(),
                item(params=other_tenant),
                item(params={**document_params("docs"), "source": "s3://elsewhere/x"}),
                item(tenant="tenant-b"),  # not a submit field: ignored, the job is the caller's
            ]
        },
    ).json()["results"]
    assert [result["status"] for result in results] == [201, 422, 422, 201]
    assert results[1]["detail"].startswith("params.source:") and results[2]["detail"].startswith("params.source:")
    assert results[0]["job"]["tenant"] == results[3]["job"]["tenant"] == TENANT
    stranger = bearer(issue_key(live_api.resources, tenant="tenant-b"))
    seen = http.get(f"/api/v1/jobs/{results[0]['job']['jobId']}", headers=stranger)
    assert seen.status_code == 404


def test_the_same_key_in_two_tenants_batches_makes_two_jobs(live_api: LiveApi, http: httpx.Client) -> None:
    key = f"shared-{uuid.uuid4()}"
    mine = http.post(BATCH, json={"jobs": [item(idempotencyKey=key)]}).json()["results"][0]
    stranger = bearer(issue_key(live_api.resources, tenant="tenant-b"))
    theirs = http.post(
        BATCH,
        headers=stranger,
        json={"jobs": [item(idempotencyKey=key, params=document_params("docs", tenant="tenant-b"))]},
    ).json()["results"][0]
    assert mine["status"] == theirs["status"] == 201
    assert mine["job"]["jobId"] != theirs["job"]["jobId"] and theirs["job"]["tenant"] == "tenant-b"


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        ({}, "jobs: field required"),
        ({"jobs": []}, f"jobs: must hold 1-{MAX_BATCH_JOBS} jobs, got 0"),
        (
            {"jobs": [item()] * (MAX_BATCH_JOBS + 1)},
            f"jobs: must hold 1-{MAX_BATCH_JOBS} jobs, got {MAX_BATCH_JOBS + 1}",
        ),
        ({"jobs": {"type": "process_document"}}, "jobs: must be an array, got dict"),
        ([item()], "body: must be a json object, got list"),
    ],
)
def test_the_jobs_list_must_hold_one_to_a_hundred(
    live_api: LiveApi, http: httpx.Client, document: Any, detail: str
) -> None:
    items = live_api.item_count()
    response = http.post(BATCH, json=document)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error" and response.json()["detail"] == detail
    assert live_api.item_count() == items


def test_the_batch_route_has_its_own_body_limit_and_each_job_the_single_one(
    live_api: LiveApi, http: httpx.Client
) -> None:
    single_limit, batch_limit = live_api.settings.max_body_bytes, live_api.settings.max_batch_body_bytes
    assert batch_limit > single_limit
    padding = "x" * (single_limit // 4)
    jobs = [item(metadata={"pad": padding, "i": i}) for i in range(8)]  # twice the single limit in all
    oversized_one = item(metadata={"pad": "x" * (single_limit + 1)})
    response = http.post(BATCH, json={"jobs": [*jobs, oversized_one]})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [result["status"] for result in results] == [201] * 8 + [413]
    assert results[8]["error"] == "payload_too_large" and f"limit of {single_limit} bytes" in results[8]["detail"]
    assert http.post("/api/v1/jobs", json={"jobs": jobs}).status_code == 413  # the single route keeps its limit
    too_big = http.post(BATCH, json={"jobs": [item(metadata={"pad": "y" * (batch_limit // 2)})] * 2})
    assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large"
    assert f"limit of {batch_limit} bytes" in too_big.json()["detail"]


def test_openapi_documents_the_batch_route(http: httpx.Client) -> None:
    operation = http.get("/openapi.json").json()["paths"][BATCH]["post"]
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema["properties"]["jobs"]["maxItems"] == MAX_BATCH_JOBS
    variants = body_schema["properties"]["jobs"]["items"]["oneOf"]  # one per job type
    assert variants and all("idempotencyKey" in variant["properties"] for variant in variants)
    assert {"200", "401", "403", "413", "422", "503"} <= set(operation["responses"])
    assert "SendMessageBatch" in operation["description"] and "1048576 bytes" in operation["description"]


@pytest.fixture(scope="module")
def resources(moto_server: str) -> AwsResources:
    return create_resources(moto_server, "apibatch")


class BrokenForSomeStore(DynamoDbJobStore):
    """The real store, except that a job whose metadata says "boom" meets an unexpected error."""

    def create(self, job: Job) -> CreateOutcome:
        if job.metadata.get("boom"):
            raise RuntimeError("unexpected failure with internal words: table jobs-xyz")
        return super().create(job)


def test_a_store_that_answers_for_no_job_is_a_503_for_the_whole_batch(resources: AwsResources) -> None:
    with outage_client(resources, store_down=True) as client:
        response = client.post(BATCH, json={"jobs": [item(), item(idempotencyKey="down"), item(type="nope")]})
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "job_store_unavailable" and response.headers["Retry-After"]
    assert "dynamodb" not in response.text.lower() and resources.table_name not in response.text


def test_a_queue_outage_still_answers_201_and_leaves_the_jobs_to_the_republisher(resources: AwsResources) -> None:
    sqs = raw_client("sqs", resources.endpoint)
    depth = queue_depth(sqs, resources.queue_url)
    with outage_client(resources, queue_down=True) as client:
        results = client.post(BATCH, json={"jobs": [item(), item(idempotencyKey="q-down")]}).json()["results"]
        assert [result["status"] for result in results] == [201, 201]
        for result in results:
            assert client.get(f"/api/v1/jobs/{result['job']['jobId']}").json()["status"] == "PENDING"
    assert queue_depth(sqs, resources.queue_url) == depth


def test_an_unexpected_error_for_one_job_is_that_jobs_500_and_the_others_stand(resources: AwsResources) -> None:
    with outage_client(resources, store_class=BrokenForSomeStore) as client:
        response = client.post(BATCH, json={"jobs": [item(), item(metadata={"boom": True}), item()]})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [result["status"] for result in results] == [201, 500, 201]
        assert results[1]["error"] == "internal_error" and response.headers["X-Trace-Id"] in results[1]["detail"]
        assert "jobs-xyz" not in response.text and "RuntimeError" not in response.text
        assert client.get(f"/api/v1/jobs/{results[2]['job']['jobId']}").status_code == 200
