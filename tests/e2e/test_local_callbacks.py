"""Callbacks on the local all-in-one (`python -m runtime.local`): a job submitted with a callbackUrl on a
listener at 127.0.0.1 ends, and the listener gets one POST signed with the webhook secret the ready line shows."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.callback_listener import listening
from tests.e2e.local_system import running_system, wait_for_status
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


def test_a_finished_job_is_posted_signed_to_its_callback_url() -> None:
    with running_system() as local:
        secret = local.ready["webhook-secret"]
        name = uuid.uuid4().hex
        local.s3().put_object(Bucket=local.bucket, Key=f"tenants/local/in/{name}.txt", Body=b"hello callbacks\n")
        body = {
            "type": "process_document",
            "params": {
                "source": f"s3://{local.bucket}/tenants/local/in/{name}.txt",
                "destination": f"s3://{local.bucket}/tenants/local/out/{name}.json",
            },
        }
        with listening() as listener, local.client() as client:
            refused = client.post("/api/v1/jobs", json={**body, "callbackUrl": "http://169.254.169.254/latest"})
            assert refused.status_code == 422 and refused.json()["detail"].startswith("callbackUrl: ")

            created = client.post("/api/v1/jobs", json={**body, "callbackUrl": listener.url("/done")})
            assert created.status_code == 201, created.text
            job_id = created.json()["jobId"]
            assert created.json()["callback"]["state"] == "pending"
            assert wait_for_status(client, job_id)["status"] == "SUCCEEDED"
            wait_for("the callback to arrive", lambda: listener.on("/done"), 60)
            wait_for(
                "the job to show its callback delivered",
                lambda: client.get(f"/api/v1/jobs/{job_id}").json()["callback"]["state"] == "delivered",
                30,
            )
            time.sleep(1)  # a second delivery of the same event would arrive by now
            [request] = listener.on("/done")
            assert request.signed_by(secret)
            assert request.document["event"] == "job.succeeded"
            assert request.document["job"]["jobId"] == job_id
            assert request.document["job"]["result"]["summary"]["lines"] == 1
            callback = client.get(f"/api/v1/jobs/{job_id}").json()["callback"]
            expected = {"url": listener.url("/done"), "state": "delivered", "attempts": 1, "lastStatusCode": 200}
            assert callback == expected
