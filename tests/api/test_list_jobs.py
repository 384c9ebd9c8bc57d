"""Issue 10, list (GET /api/v1/jobs): newest first through the listing indexes on the moto server, every job once
across pages, filters by status and type, signed cursors bound to the tenant and filters, limit bounds."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from runtime.domain.job import JobError, JobStatus
from tests.api.conftest import DOCUMENTS_BUCKET, LiveApi, bearer, issue_key


def fresh_tenant() -> str:
    # The API tests share one table: a tenant of its own makes "exactly these jobs" checkable.
    return f"list-{uuid.uuid4().hex[:12]}"


def document_job(tenant: str) -> dict[str, Any]:
    prefix = f"s3://{DOCUMENTS_BUCKET}/tenants/{tenant}/"
    return {"type": "process_document", "params": {"source": f"{prefix}in.txt", "destination": f"{prefix}out.json"}}


def report_job(tenant: str) -> dict[str, Any]:
    return {
        "type": "generate_report",
        "params": {
            "title": "t",
            "rows": [{"k": "a", "v": 1}],
            "group_by": "k",
            "metric": "v",
            "destination": f"s3://{DOCUMENTS_BUCKET}/tenants/{tenant}/report.json",
        },
    }


def submit(http: httpx.Client, live_api: LiveApi, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    live_api.clock.advance(0.002)  # distinct createdAt (milliseconds) for every job, in submit order
    response = http.post("/api/v1/jobs", json=body, headers=headers)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def walk(http: httpx.Client, headers: dict[str, str], limit: int, **filters: str) -> tuple[list[dict[str, Any]], int]:
    """Every job over every page, and how many pages it took."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": limit, **filters}
        if cursor is not None:
            params["cursor"] = cursor
        response = http.get("/api/v1/jobs", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "nextCursor"} and len(page["items"]) <= limit
        items.extend(page["items"])
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            return items, pages
        assert pages < 100


@pytest.fixture(scope="module")
def crowd(http_module: httpx.Client, live_api: LiveApi) -> tuple[str, dict[str, str], list[dict[str, Any]]]:
    """250 jobs of one new tenant, in submit order."""
    tenant = fresh_tenant()
    headers = bearer(issue_key(live_api.resources, tenant=tenant))
    jobs = [submit(http_module, live_api, headers, document_job(tenant)) for _ in range(250)]
    return tenant, headers, jobs


@pytest.fixture(scope="module")
def http_module(live_api: LiveApi) -> Any:
    with httpx.Client(base_url=live_api.base_url, timeout=30) as client:
        yield client


def test_250_jobs_come_back_each_once_newest_first(
    http_module: httpx.Client, crowd: tuple[str, dict[str, str], list[dict[str, Any]]]
) -> None:
    tenant, headers, jobs = crowd
    expected = [job["jobId"] for job in reversed(jobs)]
    for limit in (100, 25):
        items, pages = walk(http_module, headers, limit)
        assert [item["jobId"] for item in items] == expected
        assert pages >= -(-250 // limit)
        assert all(item["tenant"] == tenant for item in items)
    first = http_module.get("/api/v1/jobs", headers=headers).json()
    assert len(first["items"]) == 20 and first["nextCursor"]  # the default page size
    # A listed job is the job resource as GET shows it.
    newest = http_module.get(f"/api/v1/jobs/{expected[0]}", headers=headers).json()
    assert first["items"][0] == newest


def test_another_tenants_jobs_and_cursors_stay_theirs(
    http_module: httpx.Client, live_api: LiveApi, crowd: tuple[str, dict[str, str], list[dict[str, Any]]]
) -> None:
    _, headers, _ = crowd
    other = fresh_tenant()
    other_headers = bearer(issue_key(live_api.resources, tenant=other))
    theirs = submit(http_module, live_api, other_headers, document_job(other))
    listed, _ = walk(http_module, other_headers, 100)
    assert [item["jobId"] for item in listed] == [theirs["jobId"]]
    ours = http_module.get("/api/v1/jobs", params={"limit": 5}, headers=headers).json()
    assert theirs["jobId"] not in {item["jobId"] for item in ours["items"]}
    # Our cursor, presented by the other tenant: refused, not a page of anyone's jobs.
    foreign = http_module.get("/api/v1/jobs", params={"limit": 5, "cursor": ours["nextCursor"]}, headers=other_headers)
    assert foreign.status_code == 422 and foreign.json()["error"] == "invalid_cursor"
    assert foreign.json()["detail"].startswith("cursor: ")


def test_tampered_made_up_and_refiltered_cursors_are_invalid(
    http_module: httpx.Client, crowd: tuple[str, dict[str, str], list[dict[str, Any]]]
) -> None:
    _, headers, _ = crowd
    cursor = http_module.get("/api/v1/jobs", params={"limit": 3}, headers=headers).json()["nextCursor"]
    payload, mac = cursor.split(".")
    tampered = ("A" if payload[0] != "A" else "B") + payload[1:] + "." + mac
    for params in (
        {"cursor": tampered},
        {"cursor": "bm90LWEtY3Vyc29y.c2lnbmF0dXJl"},
        {"cursor": "garbage"},
        {"cursor": cursor, "status": "PENDING"},
        {"cursor": cursor, "type": "process_document"},
    ):
        response = http_module.get("/api/v1/jobs", params={"limit": 3, **params}, headers=headers)
        assert response.status_code == 422 and response.json()["error"] == "invalid_cursor", params


def test_filters_by_status_by_type_and_both(http_module: httpx.Client, live_api: LiveApi) -> None:
    tenant = fresh_tenant()
    headers = bearer(issue_key(live_api.resources, tenant=tenant))
    docs = [submit(http_module, live_api, headers, document_job(tenant)) for _ in range(6)]
    reports = [submit(http_module, live_api, headers, report_job(tenant)) for _ in range(5)]
    now = live_api.clock.now()
    # Move some through the store's own status writes (what the worker does): claim, then succeed or fail.
    succeeded = [docs[1]["jobId"], docs[4]["jobId"], reports[2]["jobId"]]
    processing = [reports[0]["jobId"]]
    failed_final = [docs[0]["jobId"]]
    for job_id in succeeded + processing + failed_final:
        claim = live_api.store.claim(job_id, now=now, lease_until=now + timedelta(minutes=5))
        assert claim.claimed and claim.job is not None
        if job_id in succeeded:
            assert live_api.store.succeed(job_id, attempt=claim.job.attempts, result={"ok": True}, now=now)
    assert live_api.store.fail(
        failed_final[0], attempt=1, error=JobError("boom", "it broke", permanent=True), final=True, now=now
    )

    def ids(**filters: str) -> list[str]:
        return [item["jobId"] for item in walk(http_module, headers, 2, **filters)[0]]

    newest_first = [job["jobId"] for job in reversed(docs + reports)]
    assert ids() == newest_first
    assert ids(type="generate_report") == [job["jobId"] for job in reversed(reports)]
    assert ids(type="process_document") == [job["jobId"] for job in reversed(docs)]
    assert ids(status="SUCCEEDED") == [i for i in newest_first if i in succeeded]
    assert ids(status="PROCESSING") == processing
    assert ids(status="FAILED_FINAL") == failed_final
    settled = set(succeeded + processing + failed_final)
    assert ids(status="PENDING") == [i for i in newest_first if i not in settled]
    assert ids(status="SUCCEEDED", type="process_document") == [docs[4]["jobId"], docs[1]["jobId"]]
    assert ids(status="PENDING", type="generate_report") == [
        reports[4]["jobId"],
        reports[3]["jobId"],
        reports[1]["jobId"],
    ]
    assert ids(status="FAILED") == []
    listed = {item["jobId"]: item for item in walk(http_module, headers, 100, status="SUCCEEDED")[0]}
    assert all(
        item["status"] == JobStatus.SUCCEEDED.value and item["result"] == {"ok": True} for item in listed.values()
    )


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"limit": 0}, "validation_error", "limit"),
        ({"limit": 101}, "validation_error", "limit"),
        ({"limit": "ten"}, "validation_error", "limit"),
        ({"status": "DONE"}, "validation_error", "status"),
        ({"type": "nope"}, "unknown_job_type", "type"),
    ],
)
def test_bad_parameters_are_422_naming_them(http: httpx.Client, params: dict[str, Any], code: str, field: str) -> None:
    response = http.get("/api/v1/jobs", params=params)
    assert response.status_code == 422
    assert response.json()["error"] == code and response.json()["detail"].startswith(f"{field}: ")


def test_limit_bounds_are_accepted(http: httpx.Client) -> None:
    for limit in (1, 100):
        response = http.get("/api/v1/jobs", params={"limit": limit})
        assert response.status_code == 200 and len(response.json()["items"]) <= limit
