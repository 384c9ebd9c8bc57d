"""Issue 11, defect 3, end to end on the moto server: the API served over HTTP and a worker in this process.

A result over the inline bound is stored in S3 under the tenant's prefix; the job shows the reference and its GET a
link that downloads the result over HTTP. A request whose output would pass its type's bound is refused at submit.
A result that cannot be stored fails the job. Before the fix, the 500 kB result below left the job SUCCEEDED with
`result: null` on moto (the record's write broke the 400 KB item limit halfway), and the reported request was
accepted (201) and took the worker's memory."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.adapters.s3_objects import S3ObjectStore
from runtime.adapters.sqs_queue import SqsJobQueue
from runtime.api.app import build_container, create_app
from runtime.domain.results import MAX_INLINE_RESULT_BYTES, result_uri
from runtime.job_types.generate_report import MAX_REPORT_BYTES
from runtime.job_types.transform_data import MAX_OUTPUT_BYTES, MAX_OUTPUT_VALUES
from runtime.settings import Settings
from runtime.worker.runner import Worker
from tests.adapters.resources import AwsResources, counted_client, create_resources, raw_client, unique
from tests.api.conftest import TENANT, api_settings, bearer, issue_key, serve
from tests.waiting import wait_for
from tests.worker.conftest import QUICK_WORKER_SETTINGS, VISIBILITY_S

# 200 small records and a 2,500-byte default value: about 500 kB of records, under transform_data's bound (512 KiB)
# and over both the inline bound and DynamoDB's 400 KB item limit. (Few records: moto's item operations slow down
# with the number of values in an item, past its read timeout at a few thousand.)
RECORDS = 200
NOTE = "n" * 2_500
LARGE_OUTPUT = {
    "type": "transform_data",
    "params": {
        "records": [{"i": index} for index in range(RECORDS)],
        "operations": [{"op": "default", "field": "note", "value": NOTE}],
    },
}


@dataclass
class System:
    base_url: str
    settings: Settings
    resources: AwsResources
    api_key: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, headers=bearer(self.api_key))

    def run(self, body: dict[str, Any]) -> dict[str, Any]:
        """Submits `body` and polls the job until it is terminal; the last GET's answer."""
        with self.client() as http:
            created = http.post("/api/v1/jobs", json=body)
            assert created.status_code == 201, created.text
            job_id = created.json()["jobId"]
            answers: list[dict[str, Any]] = []

            def ended() -> bool:
                answers.append(http.get(f"/api/v1/jobs/{job_id}").json())
                return answers[-1]["status"] in ("SUCCEEDED", "FAILED_FINAL")

            wait_for(f"job {job_id} to end", ended)
            return answers[-1]


def _system(moto_server: str, *, worker_bucket: str | None = None) -> Iterator[System]:
    """The API and a worker over fresh resources; the worker stores results in `worker_bucket` when given."""
    resources = create_resources(moto_server, "results", visibility_timeout_s=VISIBILITY_S, max_receive_count=10)
    settings = api_settings(resources, **QUICK_WORKER_SETTINGS).model_copy(
        update={"documents_bucket": worker_bucket or resources.bucket}
    )
    worker = Worker(
        store=DynamoDbJobStore(counted_client("dynamodb", moto_server), resources.table_name),
        queue=SqsJobQueue(counted_client("sqs", moto_server), resources.queue_url),
        objects=S3ObjectStore(counted_client("s3", moto_server)),
        settings=settings,
        republish=False,
    )
    worker.start()
    try:
        with serve(create_app(container=build_container(settings))) as base_url:
            yield System(base_url, settings, resources, issue_key(resources))
    finally:
        worker.stop(5.0)


@pytest.fixture(scope="module")
def system(moto_server: str) -> Iterator[System]:
    yield from _system(moto_server)


def test_a_large_result_is_stored_under_the_tenants_prefix_and_downloads_by_link(system: System) -> None:
    job = system.run(LARGE_OUTPUT)
    assert job["status"] == "SUCCEEDED", job
    assert job["result"] is None and job["error"] is None
    ref = job["resultRef"]
    assert ref["uri"] == result_uri(system.resources.bucket, TENANT, job["jobId"])
    assert ref["uri"].startswith(f"s3://{system.resources.bucket}/tenants/{TENANT}/results/")
    assert ref["size"] > MAX_INLINE_RESULT_BYTES
    # The link alone downloads it, from moto's S3 over HTTP: no bearer token, no AWS credentials.
    with httpx.Client(timeout=30) as anonymous:
        download = anonymous.get(job["resultUrl"])
    assert download.status_code == 200, download.text[:300]
    assert len(download.content) == ref["size"] and hashlib.sha256(download.content).hexdigest() == ref["sha256"]
    result = json.loads(download.content)
    assert result["output_count"] == RECORDS and result["records"][0] == {"i": 0, "note": NOTE}
    # The object is where the reference says, in the tenant's own prefix.
    key = ref["uri"].split("/", 3)[3]
    head = raw_client("s3", system.resources.endpoint).head_object(Bucket=system.resources.bucket, Key=key)
    assert head["ContentLength"] == ref["size"] and head["ContentType"] == "application/json"
    # A listing shows the reference but signs no link (GET the job for one).
    with system.client() as http:
        listed = http.get("/api/v1/jobs", params={"type": "transform_data", "limit": 100}).json()["items"]
    mine = next((item for item in listed if item["jobId"] == job["jobId"]), None)
    assert mine is None or (mine["resultRef"] == ref and mine["resultUrl"] is None)


def test_a_small_result_stays_inline_without_reference(system: System) -> None:
    body = {"type": "transform_data", "params": {"records": [{"a": 1}], "operations": [{"op": "limit", "count": 1}]}}
    job = system.run(body)
    assert job["status"] == "SUCCEEDED" and job["result"]["records"] == [{"a": 1}]
    assert job["resultRef"] is None and job["resultUrl"] is None


def test_the_reported_request_is_refused_at_submit_naming_the_operation(system: System) -> None:
    # The request of the issue: 5,000 records and a 40 kB default value (60 kB of body, ~200 MB of output).
    body = {
        "type": "transform_data",
        "params": {
            "records": [{} for _ in range(5_000)],
            "operations": [{"op": "default", "field": "pad", "value": "x" * 40_000}],
        },
    }
    with system.client() as http:
        before = len(http.get("/api/v1/jobs", params={"limit": 100}).json()["items"])
        refused = http.post("/api/v1/jobs", json=body)
        after = len(http.get("/api/v1/jobs", params={"limit": 100}).json()["items"])
    assert refused.status_code == 422, refused.text
    error = refused.json()
    assert error["error"] == "validation_error"
    assert error["detail"].startswith("params.operations: operations[0] (default) would make the records about")
    assert f"the limit is {MAX_OUTPUT_BYTES}" in error["detail"]
    assert after == before


def test_the_params_schemas_and_their_limits_are_in_the_openapi(system: System) -> None:
    with httpx.Client(base_url=system.base_url, timeout=30) as http:
        spec = http.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    operations = schemas["TransformDataParams"]["properties"]["operations"]["description"]
    assert f"at most {MAX_OUTPUT_BYTES} bytes of JSON and {MAX_OUTPUT_VALUES} values" in operations
    assert f"at most {MAX_REPORT_BYTES} bytes" in schemas["GenerateReportParams"]["properties"]["rows"]["description"]
    job = schemas["JobOut"]["properties"]
    assert {"resultRef", "resultUrl"} <= set(job)


def test_a_result_that_cannot_be_stored_fails_the_job_for_good(moto_server: str) -> None:
    # The worker's documents bucket does not exist: the put of the result is refused for good.
    for broken in _system(moto_server, worker_bucket=unique("no-such-bucket")):
        job = broken.run(LARGE_OUTPUT)
        assert job["status"] == "FAILED_FINAL", job
        assert job["result"] is None and job["resultRef"] is None and job["resultUrl"] is None
        assert job["error"]["code"] == "result_not_stored" and job["error"]["permanent"] is True
        assert "no-such-bucket" not in job["error"]["message"]
