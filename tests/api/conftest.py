"""The real API wired to adapters on the moto server, served by uvicorn over HTTP in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtime.adapters.dynamodb.access_store import DynamoDbAccessStore
from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.adapters.sqs_queue import SqsJobQueue
from runtime.admin.access import AccessAdmin
from runtime.api.app import build_container, create_app
from runtime.auth.principal import ALL_SCOPES
from runtime.domain.job import JobStatus
from runtime.domain.ports import UtcClock
from runtime.settings import Settings, load_settings
from tests.adapters.resources import (
    AwsResources,
    counted_client,
    create_resources,
    dead_client,
    queue_depth,
    raw_client,
    scan_all,
)
from tests.conftest import free_port


class ShiftableClock:
    """Real time plus an offset that a test may move forward (instead of sleeping)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


TENANT = "tenant-a"
# The documents bucket the API's settings name (the API itself never calls S3; it only confines the URIs that job
# params name to tenants/<tenant>/ in it). Bodies in these tests name objects under DOCS_PREFIX.
DOCUMENTS_BUCKET = "docs"
DOCS_PREFIX = f"s3://{DOCUMENTS_BUCKET}/tenants/{TENANT}/"


def document_params(bucket: str, tenant: str = TENANT) -> dict[str, str]:
    """process_document params naming objects of `tenant` in `bucket`."""
    return {
        "source": f"s3://{bucket}/tenants/{tenant}/in.txt",
        "destination": f"s3://{bucket}/tenants/{tenant}/out.json",
    }


def access_admin(resources: AwsResources) -> AccessAdmin:
    return AccessAdmin(
        DynamoDbAccessStore(raw_client("dynamodb", resources.endpoint), resources.access_table_name), UtcClock()
    )


def issue_key(resources: AwsResources, tenant: str = TENANT, scopes: tuple[str, ...] = ALL_SCOPES) -> str:
    """A new API key in the resources' access table, as `python -m runtime.admin keys create` makes one."""
    return access_admin(resources).create_key(tenant, scopes).token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# moto on a loaded 2-core machine may answer slowly: tests that are not about deadlines or shedding give the API
# the SDK's general patience (aws_clients' defaults), deadlines above it (a batch's leaves it 18 s to start writes)
# and room for 100 concurrent requests; tests/api/test_store_stalls.py sets tight ones.
PATIENT_LIMITS: dict[str, Any] = {
    "request_deadline_s": 30.0,
    "batch_request_deadline_s": 60.0,
    "api_aws_connect_timeout_s": 2.0,
    "api_aws_read_timeout_s": 5.0,
    "api_aws_max_attempts": 3,
    "max_in_flight_requests": 256,
}


def api_settings(resources: AwsResources, **overrides: Any) -> Settings:
    return load_settings(
        table_name=resources.table_name,
        access_table_name=resources.access_table_name,
        queue_url=resources.queue_url,
        dead_letter_queue_url=resources.dead_letter_queue_url,
        documents_bucket=DOCUMENTS_BUCKET,
        AWS_ENDPOINT_URL=resources.endpoint,
        AWS_REGION="us-east-1",
        **{**PATIENT_LIMITS, **overrides},
    )


@dataclass
class LiveApi:
    base_url: str
    resources: AwsResources
    settings: Settings
    clock: ShiftableClock
    store: DynamoDbJobStore
    dynamodb: Any
    sqs: Any
    api_key: str

    @property
    def auth_headers(self) -> dict[str, str]:
        return bearer(self.api_key)

    def item_count(self) -> int:
        return len(scan_all(self.dynamodb, self.resources.table_name))

    def queue_depth(self) -> int:
        return queue_depth(self.sqs, self.resources.queue_url)

    def claim(self, job_id: str) -> None:
        """The job taken by a worker (attempt 1), as when its message is received."""
        now = datetime.now(UTC)
        outcome = self.store.claim(job_id, now=now, lease_until=now + timedelta(seconds=60))
        # On a loaded machine the SDK may retry a claim whose first try was applied: it then meets its own write.
        mine = outcome.job is not None and outcome.job.status is JobStatus.PROCESSING and outcome.job.attempts == 1
        assert outcome.claimed or mine, outcome

    def succeed(self, job_id: str) -> None:
        """The claimed job's handler done: the worker's attempt 1 ends SUCCEEDED."""
        assert self.store.succeed(job_id, attempt=1, result={"ok": True}, now=datetime.now(UTC))


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port in a background thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the api server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="package")
def live_api(moto_server: str) -> Iterator[LiveApi]:
    resources = create_resources(moto_server, "api")
    settings = api_settings(resources)
    clock = ShiftableClock()
    container = build_container(settings, clock=clock)
    assert isinstance(container.store, DynamoDbJobStore)
    with serve(create_app(container=container)) as base_url:
        yield LiveApi(
            base_url,
            resources,
            settings,
            clock,
            container.store,
            raw_client("dynamodb", moto_server),
            raw_client("sqs", moto_server),
            issue_key(resources),
        )


@pytest.fixture
def http(live_api: LiveApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_api.base_url, timeout=30, headers=live_api.auth_headers) as client:
        yield client


def outage_client(
    resources: AwsResources,
    *,
    store_down: bool = False,
    queue_down: bool = False,
    store_class: type[DynamoDbJobStore] = DynamoDbJobStore,
) -> TestClient:
    """The app in-process over the moto server, its store or its queue (or both) optionally unreachable."""
    settings = api_settings(resources)
    store = store_class(
        dead_client("dynamodb") if store_down else counted_client("dynamodb", resources.endpoint), resources.table_name
    )
    queue = SqsJobQueue(
        dead_client("sqs") if queue_down else counted_client("sqs", resources.endpoint), resources.queue_url
    )
    app = create_app(container=build_container(settings, store=store, queue=queue))
    return TestClient(app, raise_server_exceptions=False, headers=bearer(issue_key(resources)))
