"""No job lost: with SQS unreachable at submit, the job is still accepted (201) and, once SQS is back,
the worker's republisher publishes it and it succeeds within the documented bound."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from benchmarks.chaos_proxy import FaultProxy, FaultRates
from runtime.observability.names import LogEvent
from tests.e2e.local_system import LocalSystem, running_system, wait_for_status

pytestmark = pytest.mark.slow

REPUBLISH_AFTER_S = 2
REPUBLISH_INTERVAL_S = 1


@pytest.fixture(scope="module")
def emulator(isolated_moto_server: str) -> str:
    # The stack's fixed SSM names (/job-tickets/local/...) must not meet another deployment.
    return isolated_moto_server


@pytest.fixture(scope="module")
def proxy(emulator: str) -> Iterator[FaultProxy]:
    # Every SQS call refused with a server error while `enabled` is set: the outage; DynamoDB, S3, SSM pass.
    outage = FaultProxy(emulator, {"sqs": FaultRates(error=1.0)}).start()
    yield outage
    outage.stop()


@pytest.fixture(scope="module")
def system(proxy: FaultProxy) -> Iterator[LocalSystem]:
    # runtime.local uses the emulator behind the proxy (AWS_ENDPOINT_URL) instead of starting its own,
    # so every AWS call of the API, the worker and the DLQ poller passes the switch.
    with running_system(
        extra_env={
            "AWS_ENDPOINT_URL": proxy.url,
            "JOBS_REPUBLISH_AFTER_S": str(REPUBLISH_AFTER_S),
            "JOBS_REPUBLISH_INTERVAL_S": str(REPUBLISH_INTERVAL_S),
        }
    ) as local:
        yield local


def test_job_accepted_while_the_queue_is_down_completes_after_it_recovers(
    system: LocalSystem, proxy: FaultProxy
) -> None:
    assert system.aws_url == proxy.url
    name = uuid.uuid4().hex
    bucket = system.bucket
    system.s3().put_object(Bucket=bucket, Key=f"tenants/local/in/{name}.txt", Body=b"survives an outage\n")
    body = {
        "type": "process_document",
        "params": {
            "source": f"s3://{bucket}/tenants/local/in/{name}.txt",
            "destination": f"s3://{bucket}/tenants/local/out/{name}.json",
        },
    }

    with httpx.Client(base_url=system.api_url, timeout=60, headers=system.auth_headers) as client:
        proxy.enabled.set()
        try:
            created = client.post("/api/v1/jobs", json=body)
            assert created.status_code == 201, created.text
            job_id = created.json()["jobId"]
            assert proxy.refused["sqs SendMessageBatch"] > 0  # the API's sends are batched
            # The API said it could not publish: the message never left.
            assert system.wait_for_event(LogEvent.JOB_CREATED, jobId=job_id)["published"] is False
            assert client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "PENDING"
        finally:
            proxy.enabled.clear()

        # The documented bound is republish_after_s + republish_interval_s; allow for the worker's receive
        # loop to come back from its own failed polls and for a busy machine.
        done = wait_for_status(client, job_id, timeout_s=REPUBLISH_AFTER_S + REPUBLISH_INTERVAL_S + 40)
    assert done["status"] == "SUCCEEDED", done
    assert done["attempts"] == 1
    assert done["result"]["summary"]["lines"] == 1
