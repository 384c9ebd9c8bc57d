"""The local all-in-one outlives its children: a SIGKILLed worker is restarted, the emulator's data survive,
and jobs submitted afterwards run."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.e2e.local_system import running_system, wait_for_status

pytestmark = pytest.mark.slow

RESTART_WAIT_S = 30.0


def transform_job(value: str) -> dict[str, object]:
    return {
        "type": "transform_data",
        "params": {"records": [{"a": value}], "operations": [{"op": "uppercase", "fields": ["a"]}]},
    }


def test_a_killed_worker_is_restarted_and_nothing_is_lost() -> None:
    with running_system() as local:
        with local.client() as client:
            before = client.post("/api/v1/jobs", json=transform_job("before"))
            assert before.status_code == 201, before.text
            assert wait_for_status(client, before.json()["jobId"])["status"] == "SUCCEEDED"

            worker = local.wait_for_event("child_started", child="worker")["pid"]
            os.kill(worker, signal.SIGKILL)
            exited = local.wait_for_event("child_exited", timeout_s=RESTART_WAIT_S, child="worker")
            assert exited["pid"] == worker and exited["exitCode"] == -signal.SIGKILL
            deadline = time.monotonic() + RESTART_WAIT_S
            while not [
                event
                for event in local.events("child_started")
                if event["child"] == "worker" and event["pid"] != worker
            ]:
                assert time.monotonic() < deadline, f"the worker was not restarted:\n{local.tail()}"
                time.sleep(0.1)

            after = client.post("/api/v1/jobs", json=transform_job("after"))
            assert after.status_code == 201, after.text
            done = wait_for_status(client, after.json()["jobId"])
            assert done["status"] == "SUCCEEDED" and done["result"]["records"] == [{"a": "AFTER"}]
            # The emulator (and its data) lives in the parent: the earlier job is still there.
            earlier = client.get(f"/api/v1/jobs/{before.json()['jobId']}")
            assert earlier.status_code == 200 and earlier.json()["status"] == "SUCCEEDED"
        assert local.process.poll() is None
        assert local.interrupt() == 0
