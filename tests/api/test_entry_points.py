"""The API's entry points: `python -m runtime.api` over HTTP, and the Lambda handler (Mangum)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtime.observability.names import LogEvent
from runtime.settings import get_settings
from tests.adapters.resources import AwsResources, create_resources
from tests.api.conftest import bearer, document_params, issue_key
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def resources(moto_server: str) -> AwsResources:
    return create_resources(moto_server, "entry")


def api_env(resources: AwsResources) -> dict[str, str]:
    return {
        "JOBS_TABLE_NAME": resources.table_name,
        "JOBS_ACCESS_TABLE_NAME": resources.access_table_name,
        "JOBS_QUEUE_URL": resources.queue_url,
        "JOBS_DEAD_LETTER_QUEUE_URL": resources.dead_letter_queue_url,
        "JOBS_DOCUMENTS_BUCKET": resources.bucket,
        "AWS_ENDPOINT_URL": resources.endpoint,
    }


@pytest.fixture
def settings_env(resources: AwsResources, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in api_env(resources).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_python_m_runtime_api_serves_where_the_settings_say_and_counts_its_aws_calls(
    resources: AwsResources, tmp_path: Path
) -> None:
    port = free_port()
    calls_file = tmp_path / "calls.{pid}.json"
    env = {
        **os.environ,
        **api_env(resources),
        "PYTHONPATH": str(REPO),
        "JOBS_API_HOST": "127.0.0.1",
        "JOBS_API_PORT": str(port),
        "JOBS_AWS_CALLS_FILE": str(calls_file),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime.api"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        headers = bearer(issue_key(resources))
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, headers=headers) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    ready = client.get("/readyz")
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            assert ready.status_code == 200 and ready.json() == {"status": "ready"}
            created = client.post(
                "/api/v1/jobs", json={"type": "process_document", "params": document_params(resources.bucket)}
            )
            assert created.status_code == 201
            # The counts go to the file the setting names, rewritten every second.
            written = tmp_path / f"calls.{process.pid}.json"
            deadline = time.monotonic() + 10
            while "submit" not in (json.loads(written.read_text()) if written.exists() else {}):
                assert time.monotonic() < deadline, "no submit calls counted in the aws calls file"
                time.sleep(0.2)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises the captured SIGTERM (the conventional exit status).
    assert process.returncode in (0, -signal.SIGTERM), output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(line.get("event") == LogEvent.JOB_CREATED for line in lines), output
    counts = json.loads(written.read_text())
    assert counts["submit"]["dynamodb.PutItem"] >= 1 and counts["health"], counts
    assert all(line.startswith("{") for line in output.splitlines() if line.strip()), output


def test_bad_configuration_exits_2_with_the_setting_named(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("JOBS_")}
    result = subprocess.run(
        [sys.executable, "-m", "runtime.api"],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "JOBS_TABLE_NAME" in result.stderr


def test_lambda_handler_answers_an_http_api_event(settings_env: None, resources: AwsResources) -> None:
    from runtime.api import lambda_handler

    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/api/v1/jobs",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "x-trace-id": "lambda-trace",
            "authorization": bearer(issue_key(resources))["Authorization"],
        },
        "requestContext": {
            "http": {
                "method": "POST",
                "path": "/api/v1/jobs",
                "sourceIp": "127.0.0.1",
                "protocol": "HTTP/1.1",
                "userAgent": "test",
            },
            "requestId": "r",
            "stage": "$default",
            "accountId": "123456789012",
            "apiId": "a",
            "domainName": "example",
            "domainPrefix": "example",
            "routeKey": "$default",
            "time": "01/Jan/2025:00:00:00 +0000",
            "timeEpoch": 0,
        },
        "body": json.dumps({"type": "process_document", "params": document_params(resources.bucket)}),
        "isBase64Encoded": False,
    }
    response = lambda_handler.handler(event, None)
    assert response["statusCode"] == 201, response
    assert response["headers"]["x-trace-id"] == "lambda-trace"
    assert json.loads(response["body"])["status"] == "PENDING"
