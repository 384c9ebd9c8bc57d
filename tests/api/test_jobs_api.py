"""The HTTP contract (shared/API.md) against the API served over HTTP on the moto server."""

from __future__ import annotations

import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from runtime.domain.job import JobError, JobStatus
from runtime.job_types.registry import job_type_names
from tests.api.conftest import LiveApi

XRAY_ID = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")
GOOD_PARAMS = {"source": "s3://docs/tenants/tenant-a/in.txt", "destination": "s3://docs/tenants/tenant-a/out.json"}


def body(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"type": "process_document", "params": dict(GOOD_PARAMS)}
    document.update(changes)
    return document


def key() -> str:
    return f"key-{uuid.uuid4()}"


def test_submit_creates_a_pending_job_and_one_message(live_api: LiveApi, http: httpx.Client) -> None:
    depth = live_api.queue_depth()
    response = http.post("/api/v1/jobs", json=body(priority="high", metadata={"team": "a"}))
    assert response.status_code == 201, response.text
    job = response.json()
    assert response.headers["Location"] == f"/api/v1/jobs/{job['jobId']}"
    assert XRAY_ID.fullmatch(response.headers["X-Trace-Id"])
    assert job["status"] == "PENDING" and job["priority"] == "high" and job["metadata"] == {"team": "a"}
    assert job["params"] == GOOD_PARAMS and job["attempts"] == 0 and job["result"] is None and job["error"] is None
    assert job["traceId"] == response.headers["X-Trace-Id"]
    assert set(job["transitions"]) == {"PENDING"}
    assert datetime.fromisoformat(job["createdAt"]).tzinfo is not None and job["createdAt"].endswith("Z")
    assert live_api.queue_depth() == depth + 1
    # Read-your-writes, and a hint for pollers while the job is not terminal.
    polled = http.get(response.headers["Location"])
    assert polled.status_code == 200 and polled.json() == job
    assert polled.headers["Retry-After"] == "1"


def test_defaults_and_the_callers_trace_id(http: httpx.Client) -> None:
    response = http.post("/api/v1/jobs", json=body(), headers={"X-Trace-Id": "caller-trace-42"})
    assert response.status_code == 201
    assert response.headers["X-Trace-Id"] == "caller-trace-42"
    assert response.json()["traceId"] == "caller-trace-42"
    assert response.json()["priority"] == "normal" and response.json()["metadata"] == {}
    bad = http.get("/api/v1/jobs/x", headers={"X-Trace-Id": "bad trace id with spaces"})
    assert XRAY_ID.fullmatch(bad.headers["X-Trace-Id"])


def test_fifty_concurrent_submits_with_one_key_create_one_job_and_one_message(
    live_api: LiveApi, http: httpx.Client
) -> None:
    items, depth = live_api.item_count(), live_api.queue_depth()
    idempotency_key = key()
    barrier = threading.Barrier(50)

    def submit(_: int) -> httpx.Response:
        with httpx.Client(base_url=live_api.base_url, timeout=60, headers=live_api.auth_headers) as client:
            barrier.wait()
            return client.post("/api/v1/jobs", json=body(), headers={"Idempotency-Key": idempotency_key})

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(submit, range(50)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201, 409}
    job_ids = {response.json()["jobId"] for response in responses if response.status_code in (200, 201)}
    assert len(job_ids) == 1
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"] == "idempotency_key_in_flight"
            assert int(response.headers["Retry-After"]) >= 1
    assert live_api.item_count() == items + 1
    assert live_api.queue_depth() == depth + 1


def test_replay_answers_200_with_the_original_job(live_api: LiveApi, http: httpx.Client) -> None:
    idempotency_key = key()
    first = http.post("/api/v1/jobs", json=body(), headers={"Idempotency-Key": idempotency_key})
    assert first.status_code == 201
    in_flight = http.post("/api/v1/jobs", json=body(), headers={"Idempotency-Key": idempotency_key})
    assert in_flight.status_code == 409 and "Retry-After" in in_flight.headers
    depth = live_api.queue_depth()
    live_api.clock.advance(live_api.settings.submit_in_flight_s + 1)
    # Same body with another key order and explicit defaults is the same body.
    params = {"destination": GOOD_PARAMS["destination"], "source": GOOD_PARAMS["source"]}
    same = {"priority": "normal", "params": params, "type": "process_document", "metadata": {}}
    replay = http.post("/api/v1/jobs", json=same, headers={"Idempotency-Key": idempotency_key})
    assert replay.status_code == 200, replay.text
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["jobId"] == first.json()["jobId"]
    assert live_api.queue_depth() == depth


def test_same_key_different_body_is_refused(live_api: LiveApi, http: httpx.Client) -> None:
    idempotency_key = key()
    assert http.post("/api/v1/jobs", json=body(), headers={"Idempotency-Key": idempotency_key}).status_code == 201
    items, depth = live_api.item_count(), live_api.queue_depth()
    other = body(params={**GOOD_PARAMS, "destination": "s3://docs/tenants/tenant-a/elsewhere.json"})
    response = http.post("/api/v1/jobs", json=other, headers={"Idempotency-Key": idempotency_key})
    assert response.status_code == 422
    assert response.json()["error"] == "idempotency_key_reused"
    assert "Idempotency-Key" in response.json()["detail"]
    assert (live_api.item_count(), live_api.queue_depth()) == (items, depth)


BAD_INPUTS: list[tuple[str, Any, dict[str, str], int, str, str]] = [
    # (case, json body or raw bytes, headers, status, error code, text the detail must contain)
    ("missing type", {"params": GOOD_PARAMS}, {}, 422, "validation_error", "type"),
    ("type not a string", {"type": 7, "params": GOOD_PARAMS}, {}, 422, "validation_error", "type"),
    ("unknown type", {"type": "nope", "params": GOOD_PARAMS}, {}, 422, "unknown_job_type", "type: unknown job type"),
    ("priority not in enum", body(priority="urgent"), {}, 422, "validation_error", "priority"),
    ("priority wrong type", body(priority=1), {}, 422, "validation_error", "priority"),
    ("params missing", {"type": "process_document"}, {}, 422, "validation_error", "params"),
    ("params empty", body(params={}), {}, 422, "validation_error", "params"),
    ("params not an object", body(params=[1, 2]), {}, 422, "validation_error", "params"),
    (
        "params field missing",
        body(params={"source": "s3://docs/tenants/tenant-a/in.txt"}),
        {},
        422,
        "validation_error",
        "params.destination",
    ),
    (
        "params field wrong type",
        body(params={**GOOD_PARAMS, "source": 12}),
        {},
        422,
        "validation_error",
        "params.source",
    ),
    ("metadata not an object", body(metadata="x"), {}, 422, "validation_error", "metadata"),
    ("metadata too big a number", body(metadata={"n": 10**40}), {}, 422, "validation_error", "metadata.n"),
    ("body not an object", [1, 2], {}, 422, "validation_error", "body: must be a json object"),
    ("malformed json", b'{"type": "process_document", "params": {', {}, 422, "invalid_json", "line 1 column"),
    ("nan is not json", b'{"type": "process_document", "params": {"a": NaN}}', {}, 422, "invalid_json", "NaN"),
    ("empty body", b"", {}, 422, "invalid_json", "body"),
    (
        "absurdly deep json",
        b'{"type": "process_document", "params": {"a": ' + b"[" * 30_000 + b"]" * 30_000 + b"}}",
        {},
        422,
        "invalid_json",
        "nested too deeply",
    ),
    (
        "deep but parseable",
        b'{"type": "process_document", "params": {"source": "s3://docs/tenants/tenant-a/a", '
        b'"destination": "s3://docs/tenants/tenant-a/b"}, "metadata": {"a": ' + b"[" * 40 + b"]" * 40 + b"}}",
        {},
        422,
        "validation_error",
        "metadata.a",
    ),
    (
        "infinite number",
        b'{"type": "process_document", "params": {"source": "s3://docs/tenants/tenant-a/a", '
        b'"destination": "s3://docs/tenants/tenant-a/b"}, "metadata": {"n": 1e400}}',
        {},
        422,
        "validation_error",
        "metadata.n",
    ),
    ("not utf-8", b'{"type": "\xff"}', {}, 422, "invalid_json", "utf-8"),
    ("key empty", body(), {"Idempotency-Key": ""}, 422, "invalid_idempotency_key", "Idempotency-Key"),
    ("key too long", body(), {"Idempotency-Key": "k" * 256}, 422, "invalid_idempotency_key", "Idempotency-Key"),
    ("key not printable", body(), {"Idempotency-Key": "a\tb"}, 422, "invalid_idempotency_key", "Idempotency-Key"),
    ("oversized body", body(params={**GOOD_PARAMS, "pad": "x" * 70_000}), {}, 413, "payload_too_large", "body"),
]


@pytest.mark.parametrize(
    ("case", "payload", "headers", "status", "code", "named"), BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS]
)
def test_bad_input_is_refused_naming_the_field_and_creates_nothing(
    live_api: LiveApi,
    http: httpx.Client,
    case: str,
    payload: Any,
    headers: dict[str, str],
    status: int,
    code: str,
    named: str,
) -> None:
    items, depth = live_api.item_count(), live_api.queue_depth()
    if isinstance(payload, bytes):
        response = http.post("/api/v1/jobs", content=payload, headers={"Content-Type": "application/json", **headers})
    else:
        response = http.post("/api/v1/jobs", json=payload, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["error"] == code and named in error["detail"], error
    assert set(error) >= {"error", "detail"} and "Traceback" not in response.text
    assert "X-Trace-Id" in response.headers
    assert (live_api.item_count(), live_api.queue_depth()) == (items, depth)


def test_unknown_type_lists_the_known_types(http: httpx.Client) -> None:
    error = http.post("/api/v1/jobs", json={"type": "nope", "params": {"a": 1}}).json()
    assert "process_document" in error["knownTypes"] and "process_document" in error["detail"]


def test_streamed_body_over_the_limit_is_413_without_content_length(live_api: LiveApi, http: httpx.Client) -> None:
    items = live_api.item_count()

    def chunks() -> Any:
        yield b'{"type": "process_document", "params": {"source": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'"}}'

    response = http.post("/api/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"
    assert live_api.item_count() == items


def test_get_unknown_job_is_404(http: httpx.Client) -> None:
    response = http.get(f"/api/v1/jobs/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["error"] == "job_not_found"
    assert http.get("/api/v1/jobs/" + "x" * 500).status_code == 404
    assert http.post(f"/api/v1/jobs/{uuid.uuid4()}/retry").json()["error"] == "job_not_found"


def test_unknown_route_and_method_use_the_error_model(http: httpx.Client) -> None:
    missing = http.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = http.delete("/api/v1/jobs")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


def submit(http: httpx.Client) -> str:
    response = http.post("/api/v1/jobs", json=body())
    assert response.status_code == 201
    return str(response.json()["jobId"])


def test_retry_of_a_pending_job_publishes_again_once_its_message_is_old(live_api: LiveApi, http: httpx.Client) -> None:
    job_id = submit(http)
    depth = live_api.queue_depth()
    fresh = http.post(f"/api/v1/jobs/{job_id}/retry")
    assert fresh.status_code == 200 and fresh.json()["status"] == "PENDING"
    assert live_api.queue_depth() == depth  # its first message is likely still in the queue
    live_api.clock.advance(live_api.settings.retry_republish_after_s)
    response = http.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 200 and response.json()["status"] == "PENDING"
    assert live_api.queue_depth() == depth + 1


@pytest.mark.parametrize("status", [JobStatus.FAILED_FINAL, JobStatus.PENDING])
def test_concurrent_retries_of_one_job_cause_one_rerun(
    live_api: LiveApi, http: httpx.Client, status: JobStatus
) -> None:
    job_id = submit(http)
    if status is JobStatus.FAILED_FINAL:
        error = JobError("dead_lettered", "received 3 times")
        assert live_api.store.fail_final(job_id, error=error, now=datetime.now(UTC)) is not None
    else:
        live_api.clock.advance(live_api.settings.retry_republish_after_s)  # a PENDING job stuck that long
    depth = live_api.queue_depth()
    barrier = threading.Barrier(100)

    def retry(_: int) -> httpx.Response:
        barrier.wait()
        return http.post(f"/api/v1/jobs/{job_id}/retry")

    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = list(pool.map(retry, range(100)))
    assert [answer.status_code for answer in answers] == [200] * 100
    assert {answer.json()["status"] for answer in answers} == {"PENDING"}
    assert live_api.queue_depth() == depth + 1  # one message: one execution


def test_retry_of_a_failed_final_job_requeues_it(live_api: LiveApi, http: httpx.Client) -> None:
    job_id = submit(http)
    assert (
        live_api.store.fail_final(job_id, error=JobError("dead_lettered", "received 3 times"), now=datetime.now(UTC))
        is not None
    )
    depth = live_api.queue_depth()
    response = http.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 200
    job = response.json()
    assert job["status"] == "PENDING" and job["error"] is None and "FAILED_FINAL" in job["transitions"]
    assert live_api.queue_depth() == depth + 1
    stored = live_api.store.get(job_id)
    assert stored is not None and stored.pending_since is not None


def test_retry_of_a_failed_job_publishes_now(live_api: LiveApi, http: httpx.Client) -> None:
    job_id = submit(http)
    now = datetime.now(UTC)
    live_api.claim(job_id)
    assert live_api.store.fail(job_id, attempt=1, error=JobError("timeout", "t"), final=False, now=now)
    depth = live_api.queue_depth()
    response = http.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 200 and response.json()["status"] == "FAILED"
    assert live_api.queue_depth() == depth + 1


@pytest.mark.parametrize("final_status", [JobStatus.PROCESSING, JobStatus.SUCCEEDED])
def test_retry_of_a_running_or_succeeded_job_is_409(
    live_api: LiveApi, http: httpx.Client, final_status: JobStatus
) -> None:
    job_id = submit(http)
    live_api.claim(job_id)
    if final_status == JobStatus.SUCCEEDED:
        live_api.succeed(job_id)
    depth = live_api.queue_depth()
    response = http.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 409
    assert response.json()["error"] == "job_not_retryable" and response.json()["status"] == final_status.value
    assert live_api.queue_depth() == depth
    polled = http.get(f"/api/v1/jobs/{job_id}")
    if final_status == JobStatus.SUCCEEDED:
        assert "Retry-After" not in polled.headers and polled.json()["result"] == {"ok": True}
    else:
        assert polled.headers["Retry-After"] == "2"


def test_health_and_readiness(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_openapi_documents_the_contract(http: httpx.Client) -> None:
    assert http.get("/docs").status_code == 200
    spec = http.get("/openapi.json").json()
    submit_op = spec["paths"]["/api/v1/jobs"]["post"]
    assert {"201", "200", "409", "413", "422", "503"} <= set(submit_op["responses"])
    assert "Location" in submit_op["responses"]["201"]["headers"]
    assert "Idempotent-Replayed" in submit_op["responses"]["200"]["headers"]
    assert "Retry-After" in submit_op["responses"]["409"]["headers"]
    assert "65536 bytes" in submit_op["description"] and "republisher" in submit_op["description"]
    names = {parameter["name"] for parameter in submit_op["parameters"]}
    assert {"Idempotency-Key", "X-Trace-Id"} <= names
    assert "ErrorOut" in spec["components"]["schemas"]
    assert set(spec["paths"]) >= {"/api/v1/jobs/{jobId}", "/api/v1/jobs/{jobId}/retry", "/healthz", "/readyz"}


def test_a_bad_value_is_shown_once_and_as_sent(http: httpx.Client) -> None:
    response = http.post(
        "/api/v1/jobs",
        json={
            "type": "process_document",
            "params": {"source": "S3:/Bucket/Key", "destination": "s3://docs/tenants/tenant-a/out"},
        },
    )
    assert response.status_code == 422
    problem = response.json()["errors"][0]
    assert problem["field"] == "params.source"
    assert problem["message"].count("'S3:/Bucket/Key'") == 1
    assert not problem["message"].startswith("value error")


def test_a_default_left_out_or_sent_explicitly_is_the_same_request(http: httpx.Client) -> None:
    report = {
        "title": "sales",
        "rows": [{"region": "eu", "amount": 3}],
        "group_by": "region",
        "metric": "amount",
        "destination": "s3://docs/tenants/tenant-a/reports/sales.json",
    }
    idempotency = {"Idempotency-Key": key()}
    first = http.post("/api/v1/jobs", json={"type": "generate_report", "params": report}, headers=idempotency)
    explicit = {**report, "format": "json"}  # the params model's default, now sent
    again = http.post("/api/v1/jobs", json={"type": "generate_report", "params": explicit}, headers=idempotency)
    assert first.status_code == 201
    assert again.status_code in (200, 409), again.text  # a replay (409 while the first is in flight), not 422
    assert again.json().get("error") != "idempotency_key_reused"
    assert first.json()["params"]["format"] == "json"


def test_openapi_publishes_each_job_types_params_and_the_links_from_a_job(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    submit_body = spec["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    batch_item = spec["paths"]["/api/v1/jobs/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    batch_item = batch_item["properties"]["jobs"]["items"]
    for body in (submit_body, batch_item):
        assert body["discriminator"] == {"propertyName": "type"}
        variants = {variant["properties"]["type"]["const"]: variant for variant in body["oneOf"]}
        assert set(variants) == set(job_type_names())
        params_ref = variants["transform_data"]["properties"]["params"]["$ref"]
        assert params_ref == "#/components/schemas/TransformDataParams"
    assert "records" in schemas["TransformDataParams"]["properties"]
    assert schemas["ProcessDocumentParams"]["properties"]["source"]["pattern"].startswith("^s3://")
    links = spec["paths"]["/api/v1/jobs"]["post"]["responses"]["201"]["links"]
    assert set(links) == {"GetJob", "RetryJob", "CancelJob"}
    assert links["GetJob"]["parameters"] == {"jobId": "$response.body#/jobId"}


def test_a_wrong_method_names_every_allowed_one(http: httpx.Client) -> None:
    response = http.request("DELETE", "/api/v1/jobs")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert response.json()["error"] == "method_not_allowed"
    batch = http.request("PUT", "/api/v1/jobs/batch")  # a literal path: the {jobId} template's GET is not offered
    assert batch.status_code == 405 and batch.headers["Allow"] == "POST"
