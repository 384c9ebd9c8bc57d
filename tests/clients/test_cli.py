"""The `jobtickets` command: every command against the local all-in-one, its exit codes and its output, in-process
(jobtickets.cli.main) and as the installed console script and `python -m jobtickets`."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from jobtickets import cli
from tests.clients.cli_runner import run_cli, service_env
from tests.clients.jobs import missing_document_params, report_params, transform_params
from tests.clients.worker_pause import paused_worker
from tests.conftest import free_port
from tests.e2e.local_system import LocalSystem

CONSOLE_SCRIPT = Path(sys.executable).parent / "jobtickets"


# -- without a service ---------------------------------------------------------------------------------------------


def test_a_missing_url_or_key_is_a_usage_error() -> None:
    code, _, err = run_cli(["get", "j1"])
    assert code == cli.EXIT_USAGE and "JOBTICKETS_URL" in err
    code, _, err = run_cli(["get", "j1"], {cli.URL_ENV: "http://127.0.0.1:9"})
    assert code == cli.EXIT_USAGE and "JOBTICKETS_API_KEY" in err


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("{not json", "--params: not valid json"),
        ("[1, 2]", "--params: must be a json object, got list"),
        ("@/no/such/file.json", "--params: cannot read '/no/such/file.json'"),
    ],
)
def test_bad_params_are_usage_errors_naming_the_option(params: str, message: str) -> None:
    env = {cli.URL_ENV: "http://127.0.0.1:9", cli.API_KEY_ENV: "k"}
    code, _, err = run_cli(["submit", "--type", "t", "--params", params], env)
    assert code == cli.EXIT_USAGE and message in err


def test_delay_and_run_at_exclude_each_other() -> None:
    with pytest.raises(SystemExit) as caught:
        cli.build_parser().parse_args(
            ["submit", "--type", "t", "--params", "{}", "--delay-seconds", "5", "--run-at", "x"]
        )
    assert caught.value.code == cli.EXIT_USAGE


def test_an_unreachable_service_exits_4_after_the_deadline() -> None:
    env = {cli.URL_ENV: f"http://127.0.0.1:{free_port()}", cli.API_KEY_ENV: "k"}
    code, _, err = run_cli(["--deadline", "1", "get", "j1"], env)
    assert code == cli.EXIT_UNAVAILABLE and "connection_failed" in err


# -- against the local all-in-one ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_submit_wait_get_list_as_json(system: LocalSystem, tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps(transform_params("ada")))
    env = service_env(system)
    code, out, err = run_cli(["submit", "--type", "transform_data", "--params", f"@{params}", "--wait", "--json"], env)
    assert code == cli.EXIT_OK, err
    job: dict[str, Any] = json.loads(out)
    assert job["status"] == "SUCCEEDED" and job["result"]["records"] == [{"name": "ADA"}]
    # Not a terminal: the progress goes to stderr as plain lines, one per change, ending with the outcome.
    assert err.splitlines()[-1].startswith("SUCCEEDED 100%")
    code, out, _ = run_cli(["get", job["jobId"], "--json"], env)
    assert code == cli.EXIT_OK and json.loads(out)["jobId"] == job["jobId"]
    code, out, _ = run_cli(["get", job["jobId"]], env)
    assert code == cli.EXIT_OK and f"jobId      {job['jobId']}" in out and "status     SUCCEEDED" in out
    code, out, _ = run_cli(["list", "--limit", "3", "--json", "--type", "transform_data"], env)
    listed = json.loads(out)
    assert code == cli.EXIT_OK and 1 <= len(listed) <= 3
    assert all(item["jobType"] == "transform_data" for item in listed)
    code, out, _ = run_cli(["list", "--limit", "2", "--status", "SUCCEEDED"], env)
    lines = out.splitlines()
    assert code == cli.EXIT_OK and lines[0].split() == ["JOB", "ID", "STATUS", "TYPE", "PRIORITY", "CREATED"]
    assert 1 <= len(lines) - 1 <= 2 and all(" SUCCEEDED " in line for line in lines[1:])


@pytest.mark.slow
def test_progress_is_shown_as_plain_lines_and_by_get(system: LocalSystem) -> None:
    env = service_env(system)
    params = json.dumps(report_params(system, uuid.uuid4().hex))
    code, out, err = run_cli(["submit", "--type", "generate_report", "--params", params, "--wait"], env)
    assert code == cli.EXIT_OK, err
    assert err.splitlines()[-1] == "SUCCEEDED 100% report written"
    code, out, _ = run_cli(["get", out.split()[1]], env)
    assert code == cli.EXIT_OK and "progress   100% report written" in out.splitlines()


@pytest.mark.slow
def test_params_from_stdin_a_key_and_human_output(system: LocalSystem) -> None:
    env = service_env(system)
    key = f"cli-{uuid.uuid4()}"
    args = ["submit", "--type", "transform_data", "--params", "@-", "--priority", "high", "--idempotency-key", key]
    code, out, _ = run_cli(args, env, stdin=json.dumps(transform_params("x")))
    assert code == cli.EXIT_OK and out.startswith("submitted ") and out.rstrip().endswith("transform_data PENDING")
    job_id = out.split()[1]
    code, again, _ = run_cli(args, env, stdin=json.dumps(transform_params("x")))
    assert again.split()[1] == job_id  # the same key: the same job
    code, _, err = run_cli(args, env, stdin=json.dumps(transform_params("other")))
    assert code == cli.EXIT_REFUSED and "idempotency_key_reused" in err


@pytest.mark.slow
def test_a_job_that_fails_exits_1_and_cancel_retry_watch_work(system: LocalSystem) -> None:
    env = service_env(system)
    params = json.dumps(missing_document_params(system, uuid.uuid4().hex))
    code, out, _ = run_cli(["submit", "--type", "process_document", "--params", params, "--wait"], env)
    assert code == cli.EXIT_JOB_FAILED
    job_id = out.split()[1]
    assert f"job {job_id} FAILED_FINAL after" in out and "missing-" in out
    code, _, err = run_cli(["cancel", job_id], env)
    assert code == cli.EXIT_REFUSED and "409 job_not_cancelable" in err
    code, out, _ = run_cli(["retry", job_id, "--json"], env)
    assert code == cli.EXIT_OK and json.loads(out)["status"] == "PENDING"
    code, out, _ = run_cli(["watch", job_id, "--timeout", "60"], env)
    assert code == cli.EXIT_JOB_FAILED and f"job {job_id} FAILED_FINAL" in out
    code, _, err = run_cli(["get", f"no-such-{uuid.uuid4()}"], env)
    assert code == cli.EXIT_REFUSED and "404 job_not_found" in err


@pytest.mark.slow
@pytest.mark.parametrize("command", [[str(CONSOLE_SCRIPT)], [sys.executable, "-m", "jobtickets"]], ids=["script", "-m"])
def test_the_installed_command_runs(system: LocalSystem, command: list[str]) -> None:
    submit = ["submit", "--type", "transform_data", "--params", json.dumps(transform_params("cli")), "--wait"]
    done = subprocess.run(
        [*command, "--url", system.api_url, "--api-key", system.api_key, *submit, "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert " SUCCEEDED after " in done.stdout.splitlines()[-1]
    unauthorized = subprocess.run(
        [*command, "--url", system.api_url, "--api-key", "jt_wrong", "get", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unauthorized.returncode == cli.EXIT_REFUSED and "401 unauthorized" in unauthorized.stderr


@pytest.mark.slow
def test_cancel_and_a_watch_that_times_out(system: LocalSystem) -> None:
    env = service_env(system)
    with paused_worker(system):
        code, out, _ = run_cli(
            ["submit", "--type", "transform_data", "--params", json.dumps(transform_params("c"))], env
        )
        job_id = out.split()[1]
        code, _, err = run_cli(["watch", job_id, "--timeout", "1"], env)
        assert code == cli.EXIT_TIMEOUT and f"job {job_id} still PENDING after 1 s" in err
        code, out, _ = run_cli(["cancel", job_id], env)
        assert code == cli.EXIT_OK and "status     CANCELED" in out
    code, out, _ = run_cli(["watch", job_id], env)
    assert code == cli.EXIT_JOB_FAILED and f"job {job_id} CANCELED after" in out


@pytest.mark.slow
def test_a_delayed_submit_shows_its_run_at_and_cancels(system: LocalSystem) -> None:
    env = service_env(system)
    params = json.dumps(transform_params("delayed"))
    code, out, _ = run_cli(
        ["submit", "--type", "transform_data", "--params", params, "--delay-seconds", "600", "--json"], env
    )
    job = json.loads(out)
    assert code == cli.EXIT_OK and job["status"] == "PENDING" and job["runAt"]
    code, out, _ = run_cli(["get", job["jobId"]], env)
    assert f"runAt      {job['runAt']}" in out.splitlines()
    code, out, _ = run_cli(["cancel", job["jobId"], "--json"], env)
    assert code == cli.EXIT_OK and json.loads(out)["status"] == "CANCELED"
    at = "2000-01-01T00:00:00Z"  # a past moment means now
    code, out, err = run_cli(["submit", "--type", "transform_data", "--params", params, "--run-at", at, "--wait"], env)
    assert code == cli.EXIT_OK, err
    code, _, err = run_cli(["submit", "--type", "transform_data", "--params", params, "--run-at", "tomorrow"], env)
    assert code == cli.EXIT_REFUSED and "422 validation_error: runAt" in err
