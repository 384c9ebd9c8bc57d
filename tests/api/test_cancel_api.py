"""POST /api/v1/jobs/{jobId}/cancel over HTTP on the moto server: every answer of the contract (shared/API.md),
the job resource's cancelRequested, the manual retry of a CANCELED job, and the OpenAPI document."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from runtime.auth.principal import SCOPE_READ
from runtime.domain.job import JobError, JobStatus
from tests.api.conftest import DOCS_PREFIX, LiveApi, bearer, issue_key


def submit(http: httpx.Client) -> str:
    params = {"source": f"{DOCS_PREFIX}in.txt", "destination": f"{DOCS_PREFIX}out.json"}
    response = http.post("/api/v1/jobs", json={"type": "process_document", "params": params})
    assert response.status_code == 201
    assert response.json()["cancelRequested"] is False
    return str(response.json()["jobId"])


def test_a_pending_job_is_canceled_at_once_and_a_second_cancel_answers_the_same(
    live_api: LiveApi, http: httpx.Client
) -> None:
    job_id = submit(http)
    response = http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200
    job = response.json()
    assert job["status"] == "CANCELED" and job["cancelRequested"] is False and "CANCELED" in job["transitions"]
    stored = live_api.store.get(job_id)
    assert stored is not None and stored.pending_since is None  # the republisher will not publish it again
    again = http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert again.status_code == 200 and again.json() == job
    polled = http.get(f"/api/v1/jobs/{job_id}")
    assert polled.json() == job and "Retry-After" not in polled.headers  # terminal: nothing to poll for


def test_a_failed_job_waiting_for_its_retry_is_canceled_at_once(live_api: LiveApi, http: httpx.Client) -> None:
    job_id = submit(http)
    live_api.claim(job_id)
    assert live_api.store.fail(job_id, attempt=1, error=JobError("timeout", "t"), final=False, now=datetime.now(UTC))
    response = http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "CANCELED"


def test_a_running_job_gets_cancel_requested_and_202(live_api: LiveApi, http: httpx.Client) -> None:
    job_id = submit(http)
    live_api.claim(job_id)
    response = http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "PROCESSING" and response.json()["cancelRequested"] is True
    assert response.headers["Retry-After"] == "2"
    polled = http.get(f"/api/v1/jobs/{job_id}").json()
    assert polled["status"] == "PROCESSING" and polled["cancelRequested"] is True
    # Asking again changes nothing and answers the same way.
    assert http.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 202


@pytest.mark.parametrize("final_status", [JobStatus.SUCCEEDED, JobStatus.FAILED_FINAL])
def test_a_succeeded_or_failed_final_job_is_not_cancelable(
    live_api: LiveApi, http: httpx.Client, final_status: JobStatus
) -> None:
    job_id = submit(http)
    now = datetime.now(UTC)
    if final_status is JobStatus.SUCCEEDED:
        live_api.claim(job_id)
        live_api.succeed(job_id)
    else:
        assert live_api.store.fail_final(job_id, error=JobError("dead_lettered", "x"), now=now) is not None
    before = live_api.store.get(job_id)
    response = http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert response.json()["error"] == "job_not_cancelable" and response.json()["status"] == final_status.value
    assert final_status.value in response.json()["detail"]
    assert live_api.store.get(job_id) == before


def test_an_unknown_or_another_tenants_job_is_404(live_api: LiveApi, http: httpx.Client) -> None:
    job_id = submit(http)
    before = live_api.store.get(job_id)
    other = bearer(issue_key(live_api.resources, tenant="tenant-cancel-other"))
    unknown = http.post(f"/api/v1/jobs/{uuid.uuid4()}/cancel")
    foreign = http.post(f"/api/v1/jobs/{job_id}/cancel", headers=other)
    too_long = http.post(f"/api/v1/jobs/{'x' * 300}/cancel")
    for response in (unknown, foreign, too_long):
        assert response.status_code == 404 and response.json()["error"] == "job_not_found"
        assert set(response.json()) == set(unknown.json())
    assert live_api.store.get(job_id) == before


def test_cancel_needs_the_write_scope(live_api: LiveApi, http: httpx.Client) -> None:
    job_id = submit(http)
    reader = bearer(issue_key(live_api.resources, scopes=(SCOPE_READ,)))
    response = http.post(f"/api/v1/jobs/{job_id}/cancel", headers=reader)
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert http.get(f"/api/v1/jobs/{job_id}").json()["status"] == "PENDING"


def test_a_canceled_job_is_retried_by_hand_like_a_failed_final_one(live_api: LiveApi, http: httpx.Client) -> None:
    job_id = submit(http)
    live_api.claim(job_id)
    assert http.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 202
    assert live_api.store.finish_canceled(job_id, attempt=1, now=datetime.now(UTC))
    depth = live_api.queue_depth()
    response = http.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 200
    job = response.json()
    assert job["status"] == "PENDING" and job["cancelRequested"] is False and "CANCELED" in job["transitions"]
    assert live_api.queue_depth() == depth + 1


def test_openapi_documents_cancel(live_api: LiveApi, http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    operation = spec["paths"]["/api/v1/jobs/{jobId}/cancel"]["post"]
    assert {"200", "202", "401", "403", "404", "409", "503"} <= set(operation["responses"])
    assert f"{live_api.settings.cancel_notice_bound_s:g} s" in operation["description"]
    assert live_api.settings.cancel_notice_bound_s <= 15
    job_schema = spec["components"]["schemas"]["JobOut"]
    assert "cancelRequested" in job_schema["properties"] and "cancelRequested" in job_schema["required"]
    assert "CANCELED" in spec["components"]["schemas"]["JobStatus"]["enum"]
