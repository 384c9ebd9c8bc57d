"""The runtime images build from the Dockerfile with podman and run: the API answers /healthz and /readyz
against a moto server provisioned from the stateful stack, the worker starts and drains on SIGTERM, both run a
job together, the Lambda image resolves its handlers, and the emulator image runs the dev overlay's Job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from runtime.adapters.dynamodb.schema import INDEXES
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
IMAGES_SH = ROOT / ".ci" / "images.sh"
BUILT_TARGETS = ("api", "worker", "lambda", "emulator")
# Waits for something to happen, not assertions on how long it took: generous for a 2-core CI machine.
START_DEADLINE_S = 60.0
# The worker's drain deadline in the container, and what podman waits before SIGKILL: clearly above it.
SHUTDOWN_DEADLINE_S = 5
STOP_TIMEOUT_S = 30

# The first test to use `images` pays for a cold build (base image, wheels, four targets: ~3 min here, more
# under load), which pytest-timeout counts against that test: allow it, beyond the suite's 300 s default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@dataclass(frozen=True)
class Images:
    names: dict[str, str]
    env: dict[str, str]

    def podman(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, check=check, timeout=timeout
        )


def _podman_env() -> dict[str, str]:
    exports = subprocess.run([str(IMAGES_SH), "env"], capture_output=True, text=True, check=True).stdout
    env = dict(os.environ)
    for line in exports.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value
    return env


@pytest.fixture(scope="session")
def images() -> Images:
    """Builds every target once per session, as `make images` does (the base image is cached in .build/)."""
    if shutil.which("podman") is None and os.geteuid() != 0:
        pytest.skip("podman is not installed and this user cannot install it (make system-deps as root)")
    env = _podman_env()
    build = subprocess.run(
        [str(IMAGES_SH), "all", *BUILT_TARGETS], env=env, capture_output=True, text=True, timeout=900
    )
    assert build.returncode == 0, f"image build failed:\n{build.stderr[-4000:]}"
    names_out = subprocess.run([str(IMAGES_SH), "names"], capture_output=True, text=True, check=True).stdout
    names = dict(line.split(" ", 1) for line in names_out.splitlines())
    return Images(names=names, env=env)


@pytest.fixture(scope="module")
def emulator(isolated_moto_server: str) -> str:
    """A moto server of this module's own, so that the stack it provisions shares names with no other test."""
    return isolated_moto_server


@pytest.fixture(scope="module")
def provisioned(emulator: str) -> dict[str, str]:
    """The stateful stack deployed into the emulator's CloudFormation by the local all-in-one's own code."""
    from runtime.local.__main__ import create_local_api_key
    from runtime.local.provision import provision

    resources = provision(endpoint_url=emulator, env_name="local")
    return {
        "SsmPath": resources.ssm_path,
        "TableName": resources.table_name,
        "QueueUrl": resources.queue_url,
        # A key of tenant `local`, as the all-in-one makes at start: /api/v1 needs a bearer token.
        "ApiKey": create_local_api_key(emulator, resources.access_table_name),
    }


def _container_env(emulator: str, ssm_path: str) -> list[str]:
    env = {
        "AWS_ENDPOINT_URL": emulator,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "JOBS_SSM_PATH": ssm_path,
        "JOBS_SHUTDOWN_DEADLINE_S": str(SHUTDOWN_DEADLINE_S),
    }
    return [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]


def _run_args(images: Images, name: str, emulator: str, ssm_path: str) -> list[str]:
    # --network host: the container reaches the emulator on the host's 127.0.0.1 and nothing but 127.0.0.1
    # carries traffic (slirp4netns' host loopback or a bridge would route through 10.x addresses).
    # --read-only with a /tmp tmpfs mirrors the Kubernetes security context (read-only root, emptyDir /tmp).
    return [
        "run", "--rm", "--pull=never", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
        "--stop-timeout", str(STOP_TIMEOUT_S), *_container_env(emulator, ssm_path),
    ]  # fmt: skip


def _image_config(images: Images, image: str) -> dict[str, Any]:
    inspected = json.loads(images.podman("image", "inspect", image).stdout)[0]
    config: dict[str, Any] = inspected["Config"]
    return config


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _wait_for_status(url: str, process: subprocess.Popen[str], expected: int) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + START_DEADLINE_S
    last: tuple[int, dict[str, Any]] = (0, {})
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"container exited with {process.returncode}:\n{output[-4000:]}")
        try:
            last = _get(url)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            last = (0, {})
        if last[0] == expected:
            return last
        time.sleep(0.25)
    return last


def _stop(images: Images, name: str, process: subprocess.Popen[str], signal: str = "TERM") -> tuple[int, str]:
    images.podman("kill", "--signal", signal, name)
    try:
        output, _ = process.communicate(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        images.podman("rm", "--force", name, check=False)
        output, _ = process.communicate()
        pytest.fail(f"container {name} did not stop within {STOP_TIMEOUT_S} s of SIGTERM:\n{output[-4000:]}")
    return process.returncode, output


def _json_lines(output: str) -> list[dict[str, Any]]:
    lines = []
    for line in output.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            lines.append(parsed)
    return lines


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    linted = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_image_script_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: `make system-deps` installs it"
    checked = subprocess.run([shellcheck, str(IMAGES_SH)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_image_runs_as_the_non_root_user_with_its_entry_point(images: Images) -> None:
    api = _image_config(images, images.names["api"])
    assert api["User"] == "10001:10001"
    assert api["Cmd"] == ["python", "-m", "runtime.api", "--host", "0.0.0.0", "--port", "8080"]
    assert "8080/tcp" in api["ExposedPorts"]
    worker = _image_config(images, images.names["worker"])
    assert worker["User"] == "10001:10001"
    assert worker["Cmd"] == ["python", "-m", "runtime.worker"]
    lambda_ = _image_config(images, images.names["lambda"])
    assert lambda_["User"] == "10001:10001"
    assert lambda_["Entrypoint"] == ["/opt/venv/bin/python", "-m", "awslambdaric"]
    assert lambda_["Cmd"] == ["runtime.dlq_handler.handler"]
    whoami = images.podman("run", "--rm", "--pull=never", images.names["api"], "id", "-u")
    assert whoami.stdout.strip() == "10001"


def test_lambda_image_resolves_both_handlers(images: Images) -> None:
    # Lambda imports the handler module named by CMD through awslambdaric; the API's Mangum handler is the
    # same image with another CMD. Importing both proves the image has everything they need.
    check = images.podman(
        "run", "--rm", "--pull=never", "--entrypoint", "python", "-e", "AWS_REGION=us-east-1",
        images.names["lambda"], "-c",
        "import awslambdaric.bootstrap, runtime.dlq_handler as d, runtime.api.lambda_handler as a;"
        "print(callable(d.handler), callable(a.handler))",
        check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == ["True", "True"]


def test_api_container_is_healthy_and_ready_against_the_emulator(
    images: Images, emulator: str, provisioned: dict[str, str]
) -> None:
    port = free_port()
    name = f"jt-api-{uuid.uuid4().hex[:8]}"
    # The image's own command, bound to a free loopback port because the container shares the host network.
    command = _image_config(images, images.names["api"])["Cmd"]
    command = [*command[: command.index("--host")], "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        ["podman", *_run_args(images, name, emulator, provisioned["SsmPath"]), images.names["api"], *command],
        env=images.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        health = _wait_for_status(f"http://127.0.0.1:{port}/healthz", process, 200)
        assert health == (200, {"status": "ok"})
        ready = _wait_for_status(f"http://127.0.0.1:{port}/readyz", process, 200)
        assert ready == (200, {"status": "ready"})
    finally:
        returncode, output = _stop(images, name, process)
    assert returncode == 0, output[-4000:]


def test_worker_container_starts_and_drains_on_sigterm(
    images: Images, emulator: str, provisioned: dict[str, str]
) -> None:
    name = f"jt-worker-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        ["podman", *_run_args(images, name, emulator, provisioned["SsmPath"]), images.names["worker"]],
        env=images.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + START_DEADLINE_S
        # The worker logs one JSON line when its receive loop runs; read until it appears.
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            events = _json_lines(line)
            if events and events[0].get("event") == "worker_started":
                break
        started = [event for event in _json_lines("".join(lines)) if event.get("event") == "worker_started"]
        assert started, "no worker_started log line:\n" + "".join(lines)[-4000:]
        assert started[0]["service"]
        # The container's health check (ECS runs the same command): the receive loop touches its liveness file
        # in the writable /tmp of a read-only root.
        health = images.podman("exec", name, "python", "-m", "runtime.worker.healthcheck", check=False)
        for _ in range(20):
            if health.returncode == 0:
                break
            time.sleep(0.5)
            health = images.podman("exec", name, "python", "-m", "runtime.worker.healthcheck", check=False)
        assert health.returncode == 0, health.stdout + health.stderr
        assert health.stdout.startswith("healthy")
    finally:
        returncode, rest = _stop(images, name, process)
    output = "".join(lines) + rest
    assert returncode == 0, output[-4000:]
    events = [event.get("event") for event in _json_lines(output)]
    assert "worker_stopped" in events, output[-4000:]


def test_api_and_worker_containers_run_a_job_end_to_end(
    images: Images, emulator: str, provisioned: dict[str, str]
) -> None:
    """Both images together, as on ECS or Kubernetes: a job submitted to the API container is processed by the
    worker container and ends SUCCEEDED."""
    port = free_port()
    suffix = uuid.uuid4().hex[:8]
    api_command = [*_image_config(images, images.names["api"])["Cmd"][:3], "--host", "127.0.0.1", "--port", str(port)]
    api = subprocess.Popen(
        ["podman", *_run_args(images, f"jt-e2e-api-{suffix}", emulator, provisioned["SsmPath"]),
         images.names["api"], *api_command],
        env=images.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    worker = subprocess.Popen(
        ["podman", *_run_args(images, f"jt-e2e-worker-{suffix}", emulator, provisioned["SsmPath"]),
         images.names["worker"]],
        env=images.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert _wait_for_status(f"http://127.0.0.1:{port}/readyz", api, 200)[0] == 200
        auth = {"Authorization": f"Bearer {provisioned['ApiKey']}"}
        body = json.dumps(
            {
                "type": "transform_data",
                "params": {"records": [{"a": "x"}], "operations": [{"op": "uppercase", "fields": ["a"]}]},
            }
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/jobs", data=body, headers={"Content-Type": "application/json", **auth}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
            job_id = json.loads(response.read())["jobId"]
        deadline = time.monotonic() + START_DEADLINE_S
        job: dict[str, Any] = {}
        while time.monotonic() < deadline and worker.poll() is None:
            job = _get(f"http://127.0.0.1:{port}/api/v1/jobs/{job_id}", auth)[1]
            if job.get("status") in ("SUCCEEDED", "FAILED_FINAL"):
                break
            time.sleep(0.25)
        assert job.get("status") == "SUCCEEDED", job
        assert job["attempts"] == 1
    finally:
        worker_exit, worker_output = _stop(images, f"jt-e2e-worker-{suffix}", worker)
        api_exit, api_output = _stop(images, f"jt-e2e-api-{suffix}", api)
    assert worker_exit == 0, worker_output[-4000:]
    assert api_exit == 0, api_output[-4000:]


def _dev_overlay_commands() -> dict[str, list[str]]:
    """The provisioning Job's and the wait-for-provisioning init container's commands, as rendered."""
    import yaml

    rendered = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "k8s" / "overlays" / "dev")], capture_output=True, text=True, check=True
    ).stdout
    commands: dict[str, list[str]] = {}
    for document in yaml.safe_load_all(rendered):
        if document and document["kind"] == "Job":
            commands["provision"] = document["spec"]["template"]["spec"]["containers"][0]["command"]
        if document and document["kind"] == "Deployment" and document["metadata"]["name"] == "job-tickets-api":
            commands["wait"] = document["spec"]["template"]["spec"]["initContainers"][0]["command"]
    return commands


def test_emulator_image_runs_moto_and_the_dev_overlay_provisioning(images: Images) -> None:
    """What overlays/dev does in a cluster, with containers: moto from the emulator image, the Job's command
    deploying the baked-in stateful template into it, and the API's init container seeing the parameters."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    name = f"jt-emulator-{uuid.uuid4().hex[:8]}"
    emulator_image = images.names["emulator"]
    command = _image_config(images, emulator_image)["Cmd"]
    assert command == ["python", "-m", "moto.server", "-H", "0.0.0.0", "-p", "5000"]
    process = subprocess.Popen(
        ["podman", "run", "--rm", "--pull=never", "--name", name, "--network", "host", "--read-only",
         "--tmpfs", "/tmp", emulator_image, *command[:3], "-H", "127.0.0.1", "-p", str(port)],
        env=images.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        commands = _dev_overlay_commands()
        job_args = [*_run_args(images, f"{name}-job", endpoint, "/job-tickets/local"), "--entrypoint", ""]
        # The Job retries until the emulator answers (backoffLimit); here the container is simply run again.
        deadline = time.monotonic() + START_DEADLINE_S
        job = images.podman(*job_args, emulator_image, *commands["provision"], check=False)
        while job.returncode != 0 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
            job = images.podman(*job_args, emulator_image, *commands["provision"], check=False)
        assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-2000:]
        provisioned = _json_lines(job.stdout)[-1]
        assert provisioned["event"] == "provisioned"
        assert provisioned["ssm_path"] == "/job-tickets/local"

        dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
        table = dynamodb.describe_table(TableName=provisioned["table_name"])["Table"]
        assert {index["IndexName"] for index in table["GlobalSecondaryIndexes"]} == {index.name for index in INDEXES}
        ttl = dynamodb.describe_time_to_live(TableName=provisioned["table_name"])["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING")
        sqs = boto3.client("sqs", endpoint_url=endpoint)
        redrive = sqs.get_queue_attributes(QueueUrl=provisioned["queue_url"], AttributeNames=["RedrivePolicy"])
        assert json.loads(redrive["Attributes"]["RedrivePolicy"])["maxReceiveCount"] == 3

        wait = images.podman(
            *_run_args(images, f"{name}-wait", endpoint, "/job-tickets/local"), emulator_image, *commands["wait"],
            check=False,
        )  # fmt: skip
        assert wait.returncode == 0, wait.stdout[-2000:] + wait.stderr[-2000:]
    finally:
        stop_signal = _image_config(images, emulator_image).get("StopSignal") or "TERM"
        returncode, output = _stop(images, name, process, signal=stop_signal)
    assert returncode == 0, output[-4000:]
