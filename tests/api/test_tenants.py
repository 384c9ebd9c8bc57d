"""Issue 9, tenants: a job belongs to the tenant that submitted it; another tenant's job does not exist for you;
idempotency keys are per tenant; job params may name S3 objects only under the caller's tenants/<tenant>/ prefix."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.api.conftest import DOCS_PREFIX, DOCUMENTS_BUCKET, TENANT, LiveApi, bearer, issue_key

OTHER_TENANT = "tenant-b"


def body(**params: str) -> dict[str, object]:
    return {
        "type": "process_document",
        "params": {"source": f"{DOCS_PREFIX}in.txt", "destination": f"{DOCS_PREFIX}out.json", **params},
    }


@pytest.fixture(scope="module")
def other(live_api: LiveApi) -> dict[str, str]:
    return bearer(issue_key(live_api.resources, tenant=OTHER_TENANT))


def test_a_job_shows_its_tenant_and_another_tenant_cannot_see_or_retry_it(
    http: httpx.Client, other: dict[str, str]
) -> None:
    created = http.post("/api/v1/jobs", json=body())
    assert created.status_code == 201 and created.json()["tenant"] == TENANT
    job_id = created.json()["jobId"]
    unknown = http.get(f"/api/v1/jobs/{uuid.uuid4()}")
    for response in (
        http.get(f"/api/v1/jobs/{job_id}", headers=other),
        http.post(f"/api/v1/jobs/{job_id}/retry", headers=other),
    ):
        assert response.status_code == 404
        # The same answer as for an id that does not exist: nothing says the job is there.
        assert response.json()["error"] == unknown.json()["error"] == "job_not_found"
        assert set(response.json()) == set(unknown.json())
    assert http.get(f"/api/v1/jobs/{job_id}").status_code == 200


def test_the_same_idempotency_key_in_two_tenants_makes_two_jobs(
    http: httpx.Client, live_api: LiveApi, other: dict[str, str]
) -> None:
    key = {"Idempotency-Key": f"shared-{uuid.uuid4()}"}
    ours = http.post("/api/v1/jobs", json=body(), headers=key)
    other_prefix = DOCS_PREFIX.replace(TENANT, OTHER_TENANT)
    theirs = http.post(
        "/api/v1/jobs",
        headers={**key, **other},
        json={
            "type": "process_document",
            "params": {"source": f"{other_prefix}in.txt", "destination": f"{other_prefix}out.json"},
        },
    )
    assert ours.status_code == 201 and theirs.status_code == 201
    assert ours.json()["jobId"] != theirs.json()["jobId"]
    assert (ours.json()["tenant"], theirs.json()["tenant"]) == (TENANT, OTHER_TENANT)
    # Each tenant's replay (after the in-flight window) finds its own job.
    live_api.clock.advance(live_api.settings.submit_in_flight_s + 1)
    assert http.post("/api/v1/jobs", json=body(), headers=key).json()["jobId"] == ours.json()["jobId"]


@pytest.mark.parametrize(
    ("field", "uri"),
    [
        ("source", f"s3://{DOCUMENTS_BUCKET}/tenants/{OTHER_TENANT}/in.txt"),  # another tenant's prefix
        ("source", f"s3://{DOCUMENTS_BUCKET}/in.txt"),  # outside every tenant
        ("destination", f"s3://other-bucket/tenants/{TENANT}/out.json"),  # another bucket
        ("destination", f"{DOCS_PREFIX}../{OTHER_TENANT}/out.json"),  # a ".." segment
        ("source", f"s3://{DOCUMENTS_BUCKET}/tenants/{TENANT}x/in.txt"),  # a tenant whose name starts like ours
    ],
)
def test_an_s3_object_outside_the_tenant_prefix_is_refused_at_submit(
    http: httpx.Client, live_api: LiveApi, field: str, uri: str
) -> None:
    before = live_api.item_count()
    response = http.post("/api/v1/jobs", json=body(**{field: uri}), headers={"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 422, response.text
    problem = response.json()["errors"][0]
    assert problem["field"] == f"params.{field}"
    assert DOCS_PREFIX in problem["message"]
    assert live_api.item_count() == before  # nothing created


def test_s3_uris_nested_anywhere_in_params_are_confined(http: httpx.Client) -> None:
    report = {
        "title": "t",
        "rows": [{"k": "a", "v": 1}],
        "group_by": "k",
        "metric": "v",
        "destination": f"s3://{DOCUMENTS_BUCKET}/tenants/{OTHER_TENANT}/r.json",
    }
    response = http.post("/api/v1/jobs", json={"type": "generate_report", "params": report})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "params.destination"


def test_an_s3_uri_deep_inside_params_is_confined_too(http: httpx.Client) -> None:
    # transform_data records are free-form: a foreign object named two levels down is still refused, by its path.
    foreign = f"s3://{DOCUMENTS_BUCKET}/tenants/{OTHER_TENANT}/secret.txt"
    params = {
        "records": [{"name": "a", "link": {"target": foreign}}],
        "operations": [{"op": "strip", "fields": ["name"]}],
    }
    response = http.post("/api/v1/jobs", json={"type": "transform_data", "params": params})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "params.records[0].link.target"
