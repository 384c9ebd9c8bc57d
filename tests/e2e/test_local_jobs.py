"""The job API end to end on the local all-in-one (`python -m runtime.local`), as a client uses it."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.local_system import LocalSystem, running_system, wait_for_status

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def system() -> Iterator[LocalSystem]:
    with running_system() as local:
        yield local


@pytest.fixture(scope="module")
def client(system: LocalSystem) -> Iterator[httpx.Client]:
    with system.client() as http:
        yield http


def document_job(system: LocalSystem, name: str) -> dict[str, Any]:
    return {
        "type": "process_document",
        "params": {
            "source": f"s3://{system.bucket}/tenants/local/in/{name}.txt",
            "destination": f"s3://{system.bucket}/tenants/local/out/{name}.json",
        },
        "metadata": {"test": name},
    }


def put_source(system: LocalSystem, name: str, text: str) -> None:
    system.s3().put_object(Bucket=system.bucket, Key=f"tenants/local/in/{name}.txt", Body=text.encode())


def test_submit_replay_and_reuse_of_an_idempotency_key(system: LocalSystem, client: httpx.Client) -> None:
    name = uuid.uuid4().hex
    put_source(system, name, "one two three\nfour five\n")
    key = f"key-{name}"
    body = document_job(system, name)

    created = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key, "X-Trace-Id": f"trace-{name}"})
    assert created.status_code == 201, created.text
    job = created.json()
    assert created.headers["Location"] == f"/api/v1/jobs/{job['jobId']}"
    assert created.headers["X-Trace-Id"] == f"trace-{name}"
    assert job["status"] == "PENDING"
    assert job["traceId"] == f"trace-{name}"

    finished = wait_for_status(client, job["jobId"])
    replayed = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})
    assert replayed.status_code == 200, replayed.text
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json()["jobId"] == job["jobId"]
    assert replayed.json()["status"] == finished["status"]

    changed = {**body, "priority": "high"}
    reused = client.post("/api/v1/jobs", json=changed, headers={"Idempotency-Key": key})
    assert reused.status_code == 422, reused.text
    assert reused.json()["error"] == "idempotency_key_reused"
    assert reused.headers["X-Trace-Id"]


def test_a_document_job_succeeds_with_a_real_summary(system: LocalSystem, client: httpx.Client) -> None:
    name = uuid.uuid4().hex
    text = "the quick brown fox\njumps over the lazy dog\n"
    put_source(system, name, text)

    created = client.post("/api/v1/jobs", json=document_job(system, name))
    assert created.status_code == 201, created.text
    job = wait_for_status(client, created.json()["jobId"])

    assert job["status"] == "SUCCEEDED", job
    assert job["attempts"] == 1
    assert job["error"] is None
    result = job["result"]
    assert set(result) == {"summary"}  # the destination is in params, the top words in the S3 summary
    summary = result["summary"]
    assert summary["size_bytes"] == len(text.encode())
    assert summary["lines"] == 2
    assert summary["words"] == 9
    assert summary["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    written_object = system.s3().get_object(Bucket=system.bucket, Key=f"tenants/local/out/{name}.json")
    written = json.loads(written_object["Body"].read())
    assert written["summary"] == summary | {"top_words": written["summary"]["top_words"]}
    assert written["source"] == f"s3://{system.bucket}/tenants/local/in/{name}.txt"
    assert written["job_id"] == job["jobId"]
    assert set(job["transitions"]) >= {"PENDING", "PROCESSING", "SUCCEEDED"}

    retried = client.post(f"/api/v1/jobs/{job['jobId']}/retry")
    assert retried.status_code == 409, retried.text
    assert retried.json()["error"] == "job_not_retryable"


def test_unknown_job_is_404(client: httpx.Client) -> None:
    missing = client.get(f"/api/v1/jobs/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["error"] == "job_not_found"
    assert missing.headers["X-Trace-Id"]


def test_missing_source_fails_final_and_a_manual_retry_succeeds(system: LocalSystem, client: httpx.Client) -> None:
    name = uuid.uuid4().hex
    created = client.post("/api/v1/jobs", json=document_job(system, name))
    assert created.status_code == 201, created.text
    job_id = created.json()["jobId"]

    failed = wait_for_status(client, job_id)
    assert failed["status"] == "FAILED_FINAL", failed
    # Permanent at once: no waiting for redeliveries.
    assert failed["attempts"] == 1
    assert f"s3://{system.bucket}/tenants/local/in/{name}.txt" in failed["error"]["message"]

    put_source(system, name, "now it exists\n")
    retried = client.post(f"/api/v1/jobs/{job_id}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "PENDING"

    done = wait_for_status(client, job_id)
    assert done["status"] == "SUCCEEDED", done
    assert done["result"]["summary"]["lines"] == 1
    assert done["error"] is None


def test_the_ready_line_carries_a_working_api_key(system: LocalSystem, client: httpx.Client) -> None:
    assert system.api_key.startswith("jt_")
    anonymous = httpx.get(f"{system.api_url}/api/v1/jobs/some-job", timeout=30)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/jobs/some-job").status_code == 404  # authenticated as tenant `local`


def test_a_scheduled_job_waits_for_its_run_at_then_runs(system: LocalSystem, client: httpx.Client) -> None:
    body = {
        "type": "transform_data",
        "delaySeconds": 3,
        "params": {"records": [{"n": 1}, {"n": 2}], "operations": [{"op": "limit", "count": 1}]},
    }
    created = client.post("/api/v1/jobs", json=body)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "PENDING" and job["runAt"] > job["createdAt"]
    assert client.get(f"/api/v1/jobs/{job['jobId']}").json()["status"] == "PENDING"

    done = wait_for_status(client, job["jobId"])
    assert done["status"] == "SUCCEEDED" and done["attempts"] == 1, done
    # RFC 3339 in UTC with fixed-width milliseconds: text order is time order.
    assert done["transitions"]["PROCESSING"] >= done["runAt"] == job["runAt"]


def test_a_cancel_is_counted_in_the_jobs_canceled_metric(system: LocalSystem, client: httpx.Client) -> None:
    def canceled_records() -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(system.lines) if line.startswith("{") and "JobsCanceled" in line]

    before = len(canceled_records())
    submitted = client.post(
        "/api/v1/jobs",
        json={
            "type": "transform_data",
            "delaySeconds": 600,  # held back: the cancel finds it PENDING
            "params": {"records": [{"n": 1}], "operations": [{"op": "limit", "count": 1}]},
        },
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["jobId"]
    assert client.post(f"/api/v1/jobs/{job_id}/cancel").json()["status"] == "CANCELED"
    assert client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200  # already CANCELED: not counted again
    deadline = time.monotonic() + 10
    while len(canceled_records()) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the log pipe lags the answers a little: a second (wrong) record would show by now
    records = canceled_records()[before:]
    assert len(records) == 1, system.tail()
    assert records[0]["JobsCanceled"] == 1 and records[0]["JobType"] == "transform_data"
