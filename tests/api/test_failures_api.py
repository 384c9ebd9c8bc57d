"""The API when a dependency is down: store unreachable -> 503 and nothing created; queue unreachable -> 201
and the job stays PENDING with its pending marker; readiness; unexpected errors answer JSON."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.adapters.dynamodb.codec import key
from runtime.adapters.dynamodb.schema import Attr
from runtime.api.deps import get_job_service
from tests.adapters.resources import (
    AwsResources,
    create_resources,
    queue_depth,
    raw_client,
    scan_all,
)
from tests.api.conftest import outage_client

BODY = {
    "type": "process_document",
    "params": {"source": "s3://docs/tenants/tenant-a/in.txt", "destination": "s3://docs/tenants/tenant-a/out.json"},
}


@pytest.fixture(scope="module")
def resources(moto_server: str) -> AwsResources:
    return create_resources(moto_server, "apifail")


@pytest.fixture
def counts(resources: AwsResources) -> Iterator[tuple[int, int]]:
    yield current_counts(resources)


def current_counts(resources: AwsResources) -> tuple[int, int]:
    return (
        len(scan_all(raw_client("dynamodb", resources.endpoint), resources.table_name)),
        queue_depth(raw_client("sqs", resources.endpoint), resources.queue_url),
    )


def test_store_unreachable_is_503_and_creates_nothing(resources: AwsResources, counts: tuple[int, int]) -> None:
    with outage_client(resources, store_down=True) as client:
        for headers in ({}, {"Idempotency-Key": "down-1"}):
            response = client.post("/api/v1/jobs", json=BODY, headers=headers)
            assert response.status_code == 503
            assert response.json()["error"] == "job_store_unavailable"
            assert response.headers["Retry-After"] and response.headers["X-Trace-Id"]
        assert client.get("/api/v1/jobs/some-id").status_code == 503
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "not ready" and ready.json()["reason"].startswith("job store")
        assert client.get("/healthz").json() == {"status": "ok"}
    assert current_counts(resources) == counts


def test_queue_unreachable_still_201_and_job_waits_with_its_marker(
    resources: AwsResources, counts: tuple[int, int]
) -> None:
    with outage_client(resources, queue_down=True) as client:
        response = client.post("/api/v1/jobs", json=BODY, headers={"Idempotency-Key": "queue-down-1"})
        assert response.status_code == 201, response.text
        job_id = response.json()["jobId"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["reason"].startswith("queue")
    items, depth = current_counts(resources)
    assert (items, depth) == (counts[0] + 1, counts[1])
    item = raw_client("dynamodb", resources.endpoint).get_item(
        TableName=resources.table_name, Key=key(job_id), ConsistentRead=True
    )["Item"]
    assert item[Attr.STATUS]["S"] == "PENDING"
    assert Attr.PENDING_SHARD in item and Attr.PENDING_SINCE in item


def test_unexpected_error_is_json_500_with_trace_id(resources: AwsResources) -> None:
    client = outage_client(resources)

    class Broken:
        def get(self, job_id: str) -> None:
            raise RuntimeError("secret internals")

    client.app.dependency_overrides[get_job_service] = lambda: Broken()  # type: ignore[attr-defined]
    with client:
        response = client.get("/api/v1/jobs/anything", headers={"X-Trace-Id": "t-500"})
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error" and "secret" not in response.text
    assert response.headers["X-Trace-Id"] == "t-500"


@pytest.mark.parametrize("down", ["store", "queue"])
def test_readiness_and_store_errors_never_show_internal_names(
    resources: AwsResources, down: str, capsys: pytest.CaptureFixture[str]
) -> None:
    internals = (resources.table_name, resources.queue_url, "127.0.0.1", "http://", "endpoint", "arn:")
    with outage_client(resources, store_down=down == "store", queue_down=down == "queue") as client:
        ready = client.get("/readyz", headers={"X-Trace-Id": f"ready-{down}"})
        answers = [ready, client.post("/api/v1/jobs", json=BODY), client.get("/api/v1/jobs/x")]
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not ready",
        "reason": f"{'job store' if down == 'store' else 'queue'} is not answering",
    }
    for response in answers:
        assert not any(name in response.text for name in internals), response.text
    # The details are in the logs, with the trace id of the probe that found them.
    logged = [line for line in capsys.readouterr().out.splitlines() if '"readiness_failed"' in line]
    assert any(f'"traceId":"ready-{down}"' in line and "127.0.0.1" in line for line in logged), logged
