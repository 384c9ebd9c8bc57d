"""The Kubernetes manifests render with kustomize, validate strictly against the Kubernetes schemas, and
say what the images and the runtime need: the built image names, probes, security context, budgets, drain time."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "aws")
COMPONENTS = ("hpa-cpu", "keda-sqs")
# Installed into the test interpreter's environment (requirements.txt), which need not be on PATH.
KUBERNETES_VALIDATE = Path(sys.executable).with_name("kubernetes-validate")

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")


def _render(directory: Path) -> str:
    return subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def _documents(rendered: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(rendered) if document]


def _by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {document["metadata"]["name"]: document for document in documents if document["kind"] == kind}


def _validator() -> str:
    found = shutil.which("kubernetes-validate") or (str(KUBERNETES_VALIDATE) if KUBERNETES_VALIDATE.exists() else None)
    assert found, "kubernetes-validate is not installed (requirements.txt)"
    return found


def _built_images() -> dict[str, str]:
    names = subprocess.run(
        [str(ROOT / ".ci" / "images.sh"), "names"], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split(" ", 1) for line in names.splitlines())


def _config(documents: list[dict[str, Any]]) -> dict[str, str]:
    (config,) = [
        d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("job-tickets-config")
    ]
    data: dict[str, str] = config["data"]
    return data


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    name: str = request.param
    return name, _documents(_render(K8S / "overlays" / name))


def _validate(rendered: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_validator(), "--strict", "-"], input=rendered, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("directory", ["base", *(f"overlays/{name}" for name in OVERLAYS)])
def test_renders_and_validates_strictly(directory: str) -> None:
    checked = _validate(_render(K8S / directory))
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output
    assert "passed for resource deployment/job-tickets-worker" in output
    assert "passed for resource deployment/job-tickets-callbacks" in output
    # Only the KEDA custom resources lack a schema; everything else is checked.
    unknown = set(re.findall(r"Couldn't find schema for kind (\w+)", output))
    assert unknown <= {"ScaledObject", "TriggerAuthentication"}, output


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_autoscaling_component_applies_to_the_base(component: str, tmp_path: Path) -> None:
    # Either component goes with any overlay: render each on its own over the base.
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize takes only relative paths to other kustomizations.
                "resources": [os.path.relpath(K8S / "base", tmp_path)],
                "components": [os.path.relpath(K8S / "components" / component, tmp_path)],
            }
        )
    )
    rendered = _render(tmp_path)
    checked = _validate(rendered)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    kinds = {document["kind"] for document in _documents(rendered)}
    assert ("HorizontalPodAutoscaler" in kinds) == (component == "hpa-cpu")
    assert ("ScaledObject" in kinds) == (component == "keda-sqs")


def test_dev_images_are_the_ones_the_image_build_produces() -> None:
    built = _built_images()
    documents = _documents(_render(K8S / "overlays" / "dev"))
    used = {
        container["image"]
        for document in documents
        if document["kind"] in ("Deployment", "Job")
        for container in [
            *document["spec"]["template"]["spec"]["containers"],
            *document["spec"]["template"]["spec"].get("initContainers", []),
        ]
    }
    assert used == {built["api"], built["worker"], built["emulator"]}
    deployments = _by_kind(documents, "Deployment")
    assert deployments["job-tickets-api"]["spec"]["template"]["spec"]["containers"][0]["image"] == built["api"]
    assert deployments["job-tickets-worker"]["spec"]["template"]["spec"]["containers"][0]["image"] == built["worker"]
    # Callback delivery runs the worker image (the same runtime/ tree) with its own command.
    assert deployments["job-tickets-callbacks"]["spec"]["template"]["spec"]["containers"][0]["image"] == built["worker"]
    assert deployments["aws-emulator"]["spec"]["template"]["spec"]["containers"][0]["image"] == built["emulator"]


def test_container_commands_match_the_dockerfile_targets() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    documents = _documents(_render(K8S / "overlays" / "dev"))
    deployments = _by_kind(documents, "Deployment")
    for deployment, target in (
        ("job-tickets-api", "api"),
        ("job-tickets-worker", "worker"),
        ("aws-emulator", "emulator"),
    ):
        stage = dockerfile.split(f" AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        (cmd,) = re.findall(r"^CMD (\[.*\])$", stage, flags=re.MULTILINE)
        assert deployments[deployment]["spec"]["template"]["spec"]["containers"][0]["args"] == yaml.safe_load(cmd)


def test_callback_delivery_runs_the_callback_queue_consumer(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    from runtime.callbacks import consumer

    _, documents = overlay
    deployment = _by_kind(documents, "Deployment")["job-tickets-callbacks"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["python", "-m", consumer.__name__]
    assert callable(consumer.main)
    assert container["envFrom"][0]["configMapRef"]["name"] == next(
        d["metadata"]["name"] for d in documents if d["kind"] == "ConfigMap"
    )
    # The worker's health check, on the consumer's own liveness file in the container's writable /tmp.
    assert container["livenessProbe"]["exec"]["command"] == [
        "python",
        "-m",
        "runtime.worker.healthcheck",
        "--file",
        consumer.LIVENESS_FILE,
    ]
    assert consumer.LIVENESS_FILE.startswith("/tmp/")
    assert "/tmp" in {mount["mountPath"] for mount in container["volumeMounts"]}
    # Deliveries under way finish on SIGTERM before SIGKILL.
    assert pod["terminationGracePeriodSeconds"] > consumer.STOP_DEADLINE_S + 5
    # Its own identity: the pod that POSTs to customers' URLs gets no job-queue or bucket permissions.
    assert pod["serviceAccountName"] == "job-tickets-callbacks"
    assert "job-tickets-callbacks" in _by_kind(documents, "ServiceAccount")
    budget = _by_kind(documents, "PodDisruptionBudget")["job-tickets-callbacks"]
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_api_has_probes_service_and_budget(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, documents = overlay
    api = _by_kind(documents, "Deployment")["job-tickets-api"]
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0]["containerPort"] == 8080
    service = _by_kind(documents, "Service")["job-tickets-api"]
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    budgets = _by_kind(documents, "PodDisruptionBudget")
    assert budgets["job-tickets-api"]["spec"]["selector"]["matchLabels"] == api["spec"]["selector"]["matchLabels"]
    assert budgets["job-tickets-api"]["spec"]["minAvailable"] < api["spec"]["replicas"]
    assert "job-tickets-worker" in budgets


def test_worker_liveness_probe_runs_the_containers_health_check(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    from runtime.worker.liveness import DEFAULT_FILE

    _, documents = overlay
    (container,) = _by_kind(documents, "Deployment")["job-tickets-worker"]["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["exec"]["command"] == ["python", "-m", "runtime.worker.healthcheck"]
    # The liveness file lives in the writable /tmp (emptyDir) of a read-only root.
    assert DEFAULT_FILE.startswith("/tmp/")
    assert "/tmp" in {mount["mountPath"] for mount in container["volumeMounts"]}


def test_pods_are_non_root_read_only_with_writable_tmp(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, documents = overlay
    pods = [d["spec"]["template"]["spec"] for d in documents if d["kind"] in ("Deployment", "Job")]
    assert pods
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
        assert pod["automountServiceAccountToken"] is False
        for container in [*pod["containers"], *pod.get("initContainers", [])]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]
        for container in pod["containers"]:
            mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
            volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]]


def test_worker_grace_period_outlasts_its_shutdown_deadline(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    from runtime.settings import Settings

    _, documents = overlay
    worker = _by_kind(documents, "Deployment")["job-tickets-worker"]
    config = _config(documents)
    deadline_s = float(config.get("JOBS_SHUTDOWN_DEADLINE_S", Settings.model_fields["shutdown_deadline_s"].default))
    # Stop receiving (a long poll ends within 20 s, inside the deadline), drain, release: all before SIGKILL.
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > deadline_s + 10
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"][0]["configMapRef"]["name"] == next(
        d["metadata"]["name"] for d in documents if d["kind"] == "ConfigMap"
    )


def test_dev_runs_against_the_in_cluster_emulator_provisioned_by_a_job() -> None:
    documents = _documents(_render(K8S / "overlays" / "dev"))
    config = _config(documents)
    service = _by_kind(documents, "Service")["aws-emulator"]
    port = service["spec"]["ports"][0]["port"]
    assert config["AWS_ENDPOINT_URL"] == f"http://aws-emulator:{port}"
    assert config["JOBS_SSM_PATH"] == "/job-tickets/local"
    (job,) = _by_kind(documents, "Job").values()
    command = "\n".join(job["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "runtime.local.provision" in command and "/app/templates/stateful-local.json" in command
    for name in ("job-tickets-api", "job-tickets-worker", "job-tickets-callbacks"):
        pod = _by_kind(documents, "Deployment")[name]["spec"]["template"]["spec"]
        assert [init["name"] for init in pod["initContainers"]] == ["wait-for-provisioning"]
        assert {"secretRef": {"name": _by_kind(documents, "Secret").popitem()[0]}} in pod["containers"][0]["envFrom"]


def test_aws_uses_irsa_and_real_aws() -> None:
    documents = _documents(_render(K8S / "overlays" / "aws"))
    config = _config(documents)
    assert "AWS_ENDPOINT_URL" not in config
    assert config["JOBS_SSM_PATH"] == "/job-tickets/dev"
    assert "aws-emulator" not in _by_kind(documents, "Deployment")
    assert not _by_kind(documents, "Secret")
    accounts = _by_kind(documents, "ServiceAccount")
    roles = {name: a["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] for name, a in accounts.items()}
    assert set(roles) == {"job-tickets", "job-tickets-callbacks"}
    for role in roles.values():
        assert re.fullmatch(r"arn:aws:iam::\d{12}:role/.+", role)
    assert roles["job-tickets"] != roles["job-tickets-callbacks"]
    for name, deployment in _by_kind(documents, "Deployment").items():
        account = "job-tickets-callbacks" if name == "job-tickets-callbacks" else "job-tickets"
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert re.fullmatch(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/job-tickets-(api|worker):[\w.-]+", image)


def test_keda_scales_the_worker_on_queue_depth() -> None:
    documents = _documents(_render(K8S / "overlays" / "aws"))
    (scaled,) = _by_kind(documents, "ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] == "job-tickets-worker"
    assert scaled["spec"]["minReplicaCount"] >= 1  # the worker also runs the republisher
    triggers = scaled["spec"]["triggers"]
    # One trigger per priority queue: a backlog in any of them scales the worker out.
    assert len(triggers) == 3
    config = _config(documents)
    placeholders = set()
    for trigger in triggers:
        assert trigger["type"] == "aws-sqs-queue"
        assert trigger["authenticationRef"]["name"] in _by_kind(documents, "TriggerAuthentication")
        # KEDA reads the queue URL from the worker container's environment: the ConfigMap must carry it.
        assert config[trigger["metadata"]["queueURLFromEnv"]].startswith("https://sqs.")
        placeholders.add(config[trigger["metadata"]["queueURLFromEnv"]])
        # ...under a name the runtime ignores: its queue URLs come from SSM, never from these placeholders.
        assert not trigger["metadata"]["queueURLFromEnv"].startswith("JOBS_")
    assert {url.rsplit("REPLACE-WITH-", 1)[1] for url in placeholders} == {
        "QueueUrl-OUTPUT",
        "HighPriorityQueueUrl-OUTPUT",
        "LowPriorityQueueUrl-OUTPUT",
    }


def test_dev_scales_the_worker_on_cpu_without_keda() -> None:
    documents = _documents(_render(K8S / "overlays" / "dev"))
    (hpa,) = _by_kind(documents, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "job-tickets-worker",
    }
    assert hpa["spec"]["minReplicas"] >= 1
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert not _by_kind(documents, "ScaledObject")
