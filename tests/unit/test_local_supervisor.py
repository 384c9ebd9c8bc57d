"""The local all-in-one's supervisor with real (tiny) child processes: failure detection and stopping."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from runtime.local.supervisor import ChildFailed, ChildSpec, Supervisor, child_environment, child_specs

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
# Ignores SIGTERM, so only the kill after the grace period stops it; touches argv[1] once it does.
STUBBORN = (
    "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "pathlib.Path(sys.argv[1]).touch(); time.sleep(60)"
)


def test_a_child_that_dies_is_named_and_the_others_are_stopped() -> None:
    supervisor = Supervisor(
        [ChildSpec("api", SLEEPER), ChildSpec("worker", [sys.executable, "-c", "raise SystemExit(3)"])], env={}
    )
    supervisor.start()
    try:
        with pytest.raises(ChildFailed, match="worker exited unexpectedly with code 3") as failed:
            supervisor.run_until_stopped()
        assert (failed.value.name, failed.value.returncode) == ("worker", 3)
    finally:
        killed = supervisor.stop(grace_s=10)
    assert killed == []  # the sleeper stopped on SIGTERM


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    ignoring = tmp_path / "ignoring-sigterm"
    supervisor = Supervisor(
        [ChildSpec("stubborn", [sys.executable, "-c", STUBBORN, str(ignoring)]), ChildSpec("api", SLEEPER)], env={}
    )
    supervisor.start()
    deadline = time.monotonic() + 30
    while not ignoring.exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # until the child has installed its handler
    supervisor.stop_requested.set()
    supervisor.run_until_stopped()  # returns at once: a stop was requested
    assert supervisor.stop(grace_s=0.5) == ["stubborn"]


def test_children_point_at_the_emulator_whatever_the_parent_has() -> None:
    parent = {"AWS_PROFILE": "prod", "AWS_ENDPOINT_URL": "https://elsewhere", "JOBS_REPUBLISH_AFTER_S": "2"}
    env = child_environment(parent, endpoint_url="http://127.0.0.1:4566", ssm_path="/job-tickets/local")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert env["JOBS_SSM_PATH"] == "/job-tickets/local"
    assert (env["AWS_REGION"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        "us-east-1",
        "testing",
        "testing",
    )
    assert "AWS_PROFILE" not in env
    assert env["JOBS_REPUBLISH_AFTER_S"] == "2"  # the parent's own settings reach the children


def test_the_three_children_and_the_api_port() -> None:
    specs = {spec.name: list(spec.argv) for spec in child_specs(api_port=8123, python="py")}
    assert specs == {
        "api": ["py", "-m", "runtime.api", "--host", "127.0.0.1", "--port", "8123"],
        "worker": ["py", "-m", "runtime.worker"],
        "dlq-poller": ["py", "-m", "runtime.local.dlq_poller"],
    }
