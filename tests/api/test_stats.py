"""Issue 12, GET /api/v1/stats on the moto server: the queues' depth and the caller's jobs finished in the last hour,
counted by one bounded Query on the caller's own listing partition, tenant-scoped, authenticated, documented."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from runtime.adapters.dynamodb.schema import TENANT_INDEX
from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.adapters.sqs_depth import SqsQueueDepths
from runtime.domain.job import JobError, JobStatus, Priority
from runtime.domain.stats import FINISHED_STATUSES
from tests.adapters.resources import raw_client
from tests.api.conftest import LiveApi, bearer, issue_key


def new_tenant(live_api: LiveApi) -> tuple[str, dict[str, str]]:
    """A tenant of its own and its key: the API tests share one table, and the counts are cached per tenant."""
    tenant = f"stats-{uuid.uuid4().hex[:12]}"
    return tenant, bearer(issue_key(live_api.resources, tenant=tenant))


def transform_job() -> dict[str, Any]:
    return {"type": "transform_data", "params": {"records": [{"n": 1}], "operations": [{"op": "limit", "count": 1}]}}


def submit(http: httpx.Client, live_api: LiveApi, headers: dict[str, str]) -> str:
    live_api.clock.advance(0.002)  # distinct createdAt for each job
    response = http.post("/api/v1/jobs", json=transform_job(), headers=headers)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["jobId"]
    return job_id


def stats(http: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    response = http.get("/api/v1/stats", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_counts_the_callers_jobs_finished_in_the_last_hour_by_status(live_api: LiveApi, http: httpx.Client) -> None:
    _, headers = new_tenant(live_api)
    succeeded, canceled, dead, waiting = (submit(http, live_api, headers) for _ in range(4))
    live_api.claim(succeeded)
    live_api.succeed(succeeded)
    assert http.post(f"/api/v1/jobs/{canceled}/cancel", headers=headers).status_code == 200
    assert live_api.store.fail_final(dead, error=JobError("dead_lettered", "x"), now=datetime.now(UTC)) is not None
    # Another tenant's finished job is not counted.
    _, other = new_tenant(live_api)
    theirs = submit(http, live_api, other)
    live_api.claim(theirs)
    live_api.succeed(theirs)

    body = stats(http, headers)

    last_hour = body["lastHour"]
    assert last_hour["counts"] == {"SUCCEEDED": 1, "FAILED_FINAL": 1, "CANCELED": 1}
    assert last_hour["complete"] is True and last_hour["windowSeconds"] == 3600
    since = datetime.fromisoformat(last_hour["since"].replace("Z", "+00:00"))
    read_at = datetime.fromisoformat(last_hour["readAt"].replace("Z", "+00:00"))
    assert read_at - since == timedelta(hours=1)
    assert waiting  # still PENDING: counted nowhere
    assert stats(http, other)["lastHour"]["counts"] == {"SUCCEEDED": 1, "FAILED_FINAL": 0, "CANCELED": 0}


def test_a_job_finished_over_an_hour_ago_is_not_counted(live_api: LiveApi, http: httpx.Client) -> None:
    _, headers = new_tenant(live_api)
    job_id = submit(http, live_api, headers)
    live_api.claim(job_id)
    live_api.succeed(job_id)  # at the real time: two hours before the API's shifted clock below
    live_api.clock.advance(7200)
    try:
        counts = stats(http, headers)["lastHour"]["counts"]
    finally:
        live_api.clock.advance(-7200)
    assert counts == {"SUCCEEDED": 0, "FAILED_FINAL": 0, "CANCELED": 0}


def test_queue_depth_per_priority(live_api: LiveApi, http: httpx.Client) -> None:
    _, headers = new_tenant(live_api)
    body = stats(http, headers)
    # The API under test has one queue (normal); every queue of the deployment is listed, highest priority first.
    assert [queue["priority"] for queue in body["queues"]] == ["normal"]
    assert all(isinstance(body["queues"][0][name], int) for name in ("visible", "inFlight", "delayed"))
    assert body["queuesReadAt"].endswith("Z")


def test_queue_depths_read_from_sqs_attributes(live_api: LiveApi, http: httpx.Client) -> None:
    _, headers = new_tenant(live_api)
    submit(http, live_api, headers)
    sqs = raw_client("sqs", live_api.resources.endpoint)
    (normal,) = SqsQueueDepths(sqs, {Priority.NORMAL: live_api.resources.queue_url}).depths()
    attributes = sqs.get_queue_attributes(
        QueueUrl=live_api.resources.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert normal.priority is Priority.NORMAL
    assert normal.visible == int(attributes["ApproximateNumberOfMessages"]) > 0
    assert normal.in_flight == int(attributes["ApproximateNumberOfMessagesNotVisible"])
    assert normal.delayed == 0


def test_cached_for_a_few_seconds_per_process(live_api: LiveApi, http: httpx.Client) -> None:
    _, headers = new_tenant(live_api)
    first = stats(http, headers)
    job_id = submit(http, live_api, headers)
    live_api.claim(job_id)
    live_api.succeed(job_id)
    second = stats(http, headers)
    assert second["lastHour"] == first["lastHour"]  # the same read, within the cache's seconds
    assert second["lastHour"]["counts"]["SUCCEEDED"] == 0


def test_needs_a_token(live_api: LiveApi) -> None:
    response = httpx.get(f"{live_api.base_url}/api/v1/stats")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["Cache-Control"] == "no-store"


def test_the_count_is_one_bounded_query_on_the_tenant_index(live_api: LiveApi, http: httpx.Client) -> None:
    tenant, headers = new_tenant(live_api)
    for _ in range(3):
        job_id = submit(http, live_api, headers)
        assert http.post(f"/api/v1/jobs/{job_id}/cancel", headers=headers).status_code == 200
    client = raw_client("dynamodb", live_api.resources.endpoint)
    calls: list[tuple[str, dict[str, Any]]] = []
    client.meta.events.register(
        "provide-client-params.dynamodb.*",
        lambda params, model, **_: calls.append((model.name, dict(params))),
    )
    store = DynamoDbJobStore(client, live_api.resources.table_name)
    now = datetime.now(UTC) + live_api.clock.offset
    since = now - timedelta(hours=1)

    whole = store.count_finished(tenant, finished_since=since, created_since=since, max_examined=10)
    cut = store.count_finished(tenant, finished_since=since, created_since=since, max_examined=2)

    assert whole.complete and whole.by_status[JobStatus.CANCELED] == 3
    assert not cut.complete and cut.by_status[JobStatus.CANCELED] == 2  # a floor: the Query stopped early
    assert [name for name, _ in calls] == ["Query", "Query"]
    for _, params in calls:
        assert params["IndexName"] == TENANT_INDEX.name
        assert params["ProjectionExpression"] == "#s"
    assert [params["Limit"] for _, params in calls] == [10, 2]
    assert set(whole.by_status) == set(FINISHED_STATUSES)


def test_documented_in_openapi(live_api: LiveApi) -> None:
    schema = httpx.get(f"{live_api.base_url}/openapi.json").json()
    operation = schema["paths"]["/api/v1/stats"]["get"]
    assert operation["security"] == [{"bearer": []}]
    assert "one indexed query" in operation["description"].lower()
    assert {"200", "401", "503"} <= set(operation["responses"])
    assert "StatsOut" in schema["components"]["schemas"]
