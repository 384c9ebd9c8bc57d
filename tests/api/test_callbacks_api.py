"""callbackUrl at submit over HTTP on the moto server: the job's `callback`, the SSRF check (422 naming
callbackUrl, with a resolver the test controls), the fingerprint, batches, a cancel's delivery message, the
OpenAPI document, and an environment without a callback queue."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runtime.adapters.sqs_callback_queue import decode
from runtime.api.app import build_container, create_app
from runtime.domain.callbacks import event_id
from tests.adapters.resources import AwsResources, create_resources, raw_client
from tests.api.conftest import DOCUMENTS_BUCKET, api_settings, bearer, document_params, issue_key

# What the test's DNS answers: public names, and names that point inside.
DNS = {
    "hooks.example.com": ["93.184.216.34"],
    "dual.example.com": ["93.184.216.34", "10.0.0.7"],
    "metadata.example.com": ["169.254.169.254"],
    "cgnat.example.com": ["100.64.3.4"],
    "mapped.example.com": ["::ffff:192.168.1.1"],
    "sixtofour.example.com": ["2002:a9fe:a9fe::1"],
    "localhost": ["127.0.0.1"],
}


def resolver(host: str, _port: int) -> list[str]:
    if host not in DNS:
        raise OSError(f"no such host {host}")
    return DNS[host]


@dataclass
class CallbackApi:
    client: TestClient
    resources: AwsResources
    callback_queue_url: str
    sqs: Any

    def submit(self, **fields: Any) -> Any:
        body = {"type": "process_document", "params": document_params(DOCUMENTS_BUCKET), **fields}
        return self.client.post("/api/v1/jobs", json=body)

    def queued(self) -> list[Any]:
        messages = self.sqs.receive_message(
            QueueUrl=self.callback_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        return [decode(message["Body"]) for message in messages]


@pytest.fixture(scope="module")
def callback_api(moto_server: str) -> Iterator[CallbackApi]:
    resources = create_resources(moto_server, "cbapi")
    sqs = raw_client("sqs", moto_server)
    queue_url = sqs.create_queue(QueueName=f"cbapi-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    settings = api_settings(resources, callback_queue_url=queue_url, callback_allow_loopback=True)
    container = build_container(settings, resolver=resolver)
    with TestClient(create_app(container=container), headers=bearer(issue_key(resources))) as client:
        yield CallbackApi(client, resources, queue_url, sqs)


def test_a_job_with_a_callback_shows_it_pending(callback_api: CallbackApi) -> None:
    response = callback_api.submit(callbackUrl="https://hooks.example.com/jobs?src=1")
    assert response.status_code == 201, response.text
    assert response.json()["callback"] == {
        "url": "https://hooks.example.com/jobs?src=1",
        "state": "pending",
        "attempts": 0,
        "lastStatusCode": None,
    }
    polled = callback_api.client.get(f"/api/v1/jobs/{response.json()['jobId']}").json()
    assert polled["callback"] == response.json()["callback"]
    plain = callback_api.submit()
    assert plain.status_code == 201 and plain.json()["callback"] is None


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("ftp://hooks.example.com/x", "http or https"),
        ("http://user:pw@hooks.example.com/x", "credentials"),
        ("http://10.0.0.1/x", "internal"),
        ("http://169.254.169.254/latest/meta-data/", "internal"),
        ("http://metadata.example.com/", "169.254.169.254"),
        ("http://cgnat.example.com/", "100.64.3.4"),
        ("http://dual.example.com/", "10.0.0.7"),
        ("http://mapped.example.com/", "internal"),
        ("http://sixtofour.example.com/", "internal"),
        ("http://[::ffff:10.0.0.1]:8080/", "internal"),
        ("http://[fe80::1]/", "internal"),
        ("http://224.0.0.1/", "internal"),
        ("http://0.0.0.0/", "internal"),
        ("https://127.0.0.1/x", "internal"),  # loopback passes only over http, where the config allows it
        ("http://nowhere.invalid/", "does not resolve"),
        ("not a url", "without spaces"),
        ("hooks.example.com/x", "http or https"),
    ],
)
def test_internal_or_malformed_callback_urls_are_refused_naming_the_field(
    callback_api: CallbackApi, url: str, names: str
) -> None:
    response = callback_api.submit(callbackUrl=url)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["detail"].startswith("callbackUrl: "), body
    assert names in body["detail"], body


def test_loopback_over_http_passes_where_the_environment_allows_it(callback_api: CallbackApi) -> None:
    assert callback_api.submit(callbackUrl="http://127.0.0.1:9/hook").status_code == 201
    assert callback_api.submit(callbackUrl="http://localhost:9/hook").status_code == 201


def test_the_callback_url_is_part_of_the_idempotency_fingerprint(callback_api: CallbackApi) -> None:
    key = {"Idempotency-Key": f"cb-{uuid.uuid4().hex}"}
    body = {
        "type": "process_document",
        "params": document_params(DOCUMENTS_BUCKET),
        "callbackUrl": "https://hooks.example.com/a",
    }
    first = callback_api.client.post("/api/v1/jobs", json=body, headers=key)
    assert first.status_code == 201
    other = callback_api.client.post(
        "/api/v1/jobs", json={**body, "callbackUrl": "https://hooks.example.com/b"}, headers=key
    )
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"


def test_a_batch_refuses_only_the_item_with_an_internal_callback(callback_api: CallbackApi) -> None:
    jobs = [
        {
            "type": "process_document",
            "params": document_params(DOCUMENTS_BUCKET),
            "callbackUrl": "https://hooks.example.com/1",
        },
        {"type": "process_document", "params": document_params(DOCUMENTS_BUCKET), "callbackUrl": "http://10.1.1.1/"},
        {"type": "process_document", "params": document_params(DOCUMENTS_BUCKET)},
    ]
    results = callback_api.client.post("/api/v1/jobs/batch", json={"jobs": jobs}).json()["results"]
    assert [result["status"] for result in results] == [201, 422, 201]
    assert results[0]["job"]["callback"]["url"] == "https://hooks.example.com/1"
    assert results[1]["detail"].startswith("callbackUrl: ") and "internal" in results[1]["detail"]


def test_canceling_a_pending_job_queues_its_callback_event(callback_api: CallbackApi) -> None:
    callback_api.queued()  # drain what earlier tests left
    job_id = callback_api.submit(callbackUrl="https://hooks.example.com/cancel").json()["jobId"]
    canceled = callback_api.client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "CANCELED"
    assert canceled.json()["callback"]["state"] == "pending"
    messages = [message for message in callback_api.queued() if message is not None and message.job_id == job_id]
    assert len(messages) == 1
    container_store = callback_api.client.app.state.container.store  # type: ignore[attr-defined]
    job = container_store.get(job_id)
    assert messages[0].event_id == event_id(job)
    # Its message is out: the job left the callback outbox.
    due = container_store.due_callbacks(older_than=job.updated_at.replace(year=2100), limit=100)
    assert job_id not in [entry.job_id for entry in due]


def test_the_openapi_document_describes_callbacks(callback_api: CallbackApi) -> None:
    spec = callback_api.client.get("/openapi.json").json()
    submit = spec["paths"]["/api/v1/jobs"]["post"]
    assert "callbackUrl" in json.dumps(submit["requestBody"])
    assert "Job-Tickets-Signature" in submit["description"]
    callback = spec["components"]["schemas"]["CallbackOut"]
    assert set(callback["properties"]) == {"url", "state", "attempts", "lastStatusCode"}
    assert "callback" in spec["components"]["schemas"]["JobOut"]["properties"]


def test_without_a_callback_queue_a_callback_url_is_refused(moto_server: str) -> None:
    resources = create_resources(moto_server, "cbnone")
    container = build_container(api_settings(resources), resolver=resolver)
    with TestClient(create_app(container=container), headers=bearer(issue_key(resources))) as client:
        response = client.post(
            "/api/v1/jobs",
            json={
                "type": "process_document",
                "params": document_params(DOCUMENTS_BUCKET),
                "callbackUrl": "https://hooks.example.com/",
            },
        )
    assert response.status_code == 422
    assert response.json()["detail"] == "callbackUrl: callbacks are not configured here"
