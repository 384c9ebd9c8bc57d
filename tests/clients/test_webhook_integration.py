"""A real webhook delivery from the local all-in-one checked with the client's verify_signature, and the job's
callback state read through the client."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from jobtickets import InvalidSignature, JobTicketsClient, ValidationFailed, cli, verify_signature
from jobtickets.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER
from tests.callback_listener import listening
from tests.clients.cli_runner import run_cli, service_env
from tests.clients.jobs import transform_params
from tests.e2e.local_system import LocalSystem
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def client(system: LocalSystem) -> Iterator[JobTicketsClient]:
    with JobTicketsClient(system.api_url, system.api_key) as jobs:
        yield jobs


def test_a_delivery_verifies_with_the_tenants_secret(system: LocalSystem, client: JobTicketsClient) -> None:
    secret = system.ready["webhook-secret"]
    with listening() as listener:
        url = listener.url(f"/hook/{uuid.uuid4().hex}")
        path = url.removeprefix(listener.base_url)
        job = client.submit("transform_data", transform_params("hook"), callback_url=url)
        assert job.callback is not None and (job.callback.url, job.callback.state) == (url, "pending")
        assert client.wait(job.job_id, timeout=60).status == "SUCCEEDED"
        wait_for("the delivery", lambda: listener.on(path), 60)
        delivery = listener.on(path)[0]
        header = delivery.headers[SIGNATURE_HEADER]
        assert verify_signature(secret, header, delivery.body) > 0
        assert delivery.document["event"] == "job.succeeded" and delivery.document["job"]["jobId"] == job.job_id
        assert delivery.headers[EVENT_ID_HEADER]
        for wrong_secret, body in ((secret + "x", delivery.body), (secret, delivery.body + b" ")):
            with pytest.raises(InvalidSignature):
                verify_signature(wrong_secret, header, body)
        wait_for(
            "the delivered state", lambda: getattr(client.get(job.job_id).callback, "state", "") == "delivered", 30
        )
    callback = client.get(job.job_id).callback
    assert callback is not None and callback.attempts >= 1 and callback.last_status_code == 200
    with pytest.raises(ValidationFailed) as refused:
        client.submit("transform_data", transform_params("x"), callback_url="http://169.254.169.254/latest")
    assert refused.value.detail.startswith("callbackUrl: ")


def test_the_cli_submits_with_a_callback_url_and_shows_its_delivery(system: LocalSystem) -> None:
    env = service_env(system)
    with listening() as listener:
        url = listener.url("/cli-hook")
        args = ["submit", "--type", "transform_data", "--params", json.dumps(transform_params("c"))]
        code, out, err = run_cli([*args, "--callback-url", url, "--wait", "--json"], env)
        assert code == cli.EXIT_OK, err
        job = json.loads(out)
        assert job["callback"]["url"] == url
        wait_for("the delivery", lambda: listener.on("/cli-hook"), 60)
        [delivery] = listener.on("/cli-hook")[:1]
        assert verify_signature(system.ready["webhook-secret"], delivery.headers[SIGNATURE_HEADER], delivery.body)

        def shown() -> bool:
            return f"callback   delivered (1 attempts) {url}" in run_cli(["get", job["jobId"]], env)[1].splitlines()

        wait_for("get to show the delivery", shown, 30)
