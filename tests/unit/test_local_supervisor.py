"""The local all-in-one's supervisor with real (tiny) child processes: restarts, crash loops and stopping; and
the emulator's port check."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from runtime.local.__main__ import parse_args
from runtime.local.emulator import check_port_free
from runtime.local.supervisor import (
    ChildFailed,
    ChildSpec,
    RestartPolicy,
    Supervisor,
    child_environment,
    child_specs,
)
from tests.conftest import free_port

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
# Ignores SIGTERM, so only the kill after the grace period stops it; touches argv[1] once it does.
STUBBORN = (
    "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "pathlib.Path(sys.argv[1]).touch(); time.sleep(60)"
)


FAST = RestartPolicy(max_crashes=3, window_s=30, backoff_base_s=0.05, backoff_max_s=0.2)


def run_for(supervisor: Supervisor, seconds: float) -> None:
    """Supervises for a while, as run_until_stopped does, without a stop request."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        supervisor.check_children()
        time.sleep(0.02)


def test_a_killed_child_is_restarted_and_the_others_keep_running() -> None:
    supervisor = Supervisor([ChildSpec("api", SLEEPER), ChildSpec("worker", SLEEPER)], env={}, restart=FAST)
    supervisor.start()
    try:
        api, worker = supervisor.pid("api"), supervisor.pid("worker")
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while supervisor.pid("worker") == worker:
            assert time.monotonic() < deadline, "the worker was not restarted"
            supervisor.check_children()
            time.sleep(0.02)
        run_for(supervisor, 0.3)
        assert supervisor.pid("api") == api and os.waitpid(supervisor.pid("worker"), os.WNOHANG) == (0, 0)
    finally:
        assert supervisor.stop(grace_s=10) == []


def test_a_child_that_keeps_crashing_is_named_and_the_others_are_stopped() -> None:
    supervisor = Supervisor(
        [ChildSpec("api", SLEEPER), ChildSpec("worker", [sys.executable, "-c", "raise SystemExit(3)"])],
        env={},
        restart=FAST,
    )
    supervisor.start()
    started = time.monotonic()
    try:
        with pytest.raises(
            ChildFailed,
            match=r"worker keeps crashing: it exited 3 times within 30 s "
            r"\(last exit code 3\)",
        ) as failed:
            supervisor.run_until_stopped()
        assert (failed.value.name, failed.value.returncode) == ("worker", 3)
        # Two restarts in between, after 0.05 s and 0.1 s of backoff.
        assert time.monotonic() - started >= 0.15
    finally:
        killed = supervisor.stop(grace_s=10)
    assert killed == []  # the sleeper stopped on SIGTERM


@pytest.mark.parametrize(("crashes", "delay"), [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (6, 10.0), (20, 10.0)])
def test_restart_backoff_doubles_up_to_its_ceiling(crashes: int, delay: float) -> None:
    assert RestartPolicy().delay_s(crashes) == delay


def time_wait_on(port: int) -> None:
    """A connection to `port` that the server side closes first: the server's end sits in TIME_WAIT for a
    minute, as after a `make run` stopped with Ctrl-C while clients were connected."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server closes first: TIME_WAIT is on its side, on `port`
        client.recv(1)
        client.close()


def test_the_emulator_port_check_ignores_time_wait_connections() -> None:
    port = free_port()
    time_wait_on(port)
    check_port_free(port)  # would fail with "address already in use" without SO_REUSEADDR


def test_the_emulator_port_check_still_refuses_a_port_in_use() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(RuntimeError, match=f"aws emulator port {listener.getsockname()[1]} is taken"):
            check_port_free(listener.getsockname()[1])


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


def test_the_four_children_and_the_api_port() -> None:
    specs = {spec.name: list(spec.argv) for spec in child_specs(api_port=8123, python="py")}
    assert specs == {
        "api": ["py", "-m", "runtime.api", "--host", "127.0.0.1", "--port", "8123"],
        "worker": ["py", "-m", "runtime.worker"],
        "dlq-poller": ["py", "-m", "runtime.local.dlq_poller"],
        "callback-consumer": ["py", "-m", "runtime.callbacks.consumer"],
    }


def test_local_options_route_children_and_tolerate_deliberate_kills() -> None:
    defaults = parse_args([])
    assert defaults.children_aws_endpoint is None and defaults.crash_limit == RestartPolicy().max_crashes
    chosen = parse_args(["--children-aws-endpoint", "http://127.0.0.1:9/", "--crash-limit", "1000"])
    assert chosen.children_aws_endpoint == "http://127.0.0.1:9/" and chosen.crash_limit == 1000


def test_a_crash_limit_below_one_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--crash-limit", "0"])
    assert "--crash-limit must be at least 1, got 0" in capsys.readouterr().err
