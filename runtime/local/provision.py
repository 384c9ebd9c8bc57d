"""Deploys the stateful stack, as the CDK app defines it, into the emulator's CloudFormation.

The template comes from `stacks.stateful_template(env)` (synthesized in a child process, since jsii keeps
a Node process and ~500 MB alive) and is cached under .cache/ by a hash of the stack sources and the
aws-cdk-lib version, so that every run after the first skips the synthesis.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from runtime.adapters.dynamodb import access_schema
from runtime.adapters.dynamodb import schema as jobs_table_schema
from runtime.domain import priorities

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache" / "local-templates"
# The environment the local all-in-one (and the adapter tests) deploy.
LOCAL_ENV = "local"
SYNTH_TIMEOUT_S = 300
DEPLOY_TIMEOUT_S = 120
# The default synthesizer's rule reads this parameter; the emulator has no bootstrap stack.
BOOTSTRAP_VERSION_PARAMETER = "/cdk-bootstrap/hnb659fds/version"

_SYNTH_CHILD = "import json, sys, stacks; json.dump(stacks.stateful_template(sys.argv[1]), sys.stdout)"


@dataclass(frozen=True)
class LocalResources:
    stack_name: str
    table_name: str
    access_table_name: str
    queue_url: str
    dead_letter_queue_url: str
    documents_bucket: str
    ssm_path: str
    callback_queue_url: str


def source_hash(repo_root: Path = REPO_ROOT) -> str:
    """Changes whenever the stack definition could synthesize differently."""
    digest = hashlib.sha256()
    for version_of in ("aws-cdk-lib", "constructs"):
        try:
            digest.update(f"{version_of}=={importlib.metadata.version(version_of)}\n".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{version_of} missing\n".encode())
    inputs = sorted((repo_root / "stacks").rglob("*.py"))
    # The stacks build the jobs and access tables from the runtime's schema modules, and a queue per priority.
    runtime_sources = [
        repo_root / Path(module.__file__).resolve().relative_to(REPO_ROOT)
        for module in (jobs_table_schema, access_schema, priorities)
        if module.__file__
    ]
    inputs += [path for path in (repo_root / "cdk.json", *runtime_sources) if path.exists()]
    for path in inputs:
        digest.update(str(path.relative_to(repo_root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def stateful_template(env_name: str, *, cache_dir: Path = CACHE_DIR, repo_root: Path = REPO_ROOT) -> dict[str, Any]:
    """The synthesized stateful template of `env_name`, from the cache when the sources did not change."""
    cached = cache_dir / f"stateful-{env_name}-{source_hash(repo_root)}.json"
    if cached.exists():
        template: dict[str, Any] = json.loads(cached.read_text(encoding="utf-8"))
        return template
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDK_DISABLE_VERSION_CHECK": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _SYNTH_CHILD, env_name],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=SYNTH_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"synthesizing the stateful stack failed (exit {done.returncode}): {done.stderr[-2000:]}")
    template = json.loads(done.stdout)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for stale in cache_dir.glob(f"stateful-{env_name}-*.json"):
        stale.unlink(missing_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(template), encoding="utf-8")
    os.replace(tmp, cached)
    return template


def deploy(
    template: dict[str, Any], *, endpoint_url: str, stack_name: str, region: str = "us-east-1"
) -> LocalResources:
    """Deploys the stateful stack (see deploy_stack) and reads the resources from its outputs."""
    outputs = deploy_stack(template, endpoint_url=endpoint_url, stack_name=stack_name, region=region)
    missing = {
        "TableName",
        "AccessTableName",
        "QueueUrl",
        "DeadLetterQueueUrl",
        "DocumentsBucketName",
        "SsmPath",
        "CallbackQueueUrl",
    } - set(outputs)
    if missing:
        raise RuntimeError(f"stack {stack_name} lacks outputs: {sorted(missing)}")
    return LocalResources(
        stack_name=stack_name,
        table_name=outputs["TableName"],
        access_table_name=outputs["AccessTableName"],
        queue_url=outputs["QueueUrl"],
        dead_letter_queue_url=outputs["DeadLetterQueueUrl"],
        documents_bucket=outputs["DocumentsBucketName"],
        ssm_path=outputs["SsmPath"],
        callback_queue_url=outputs["CallbackQueueUrl"],
    )


def deploy_stack(
    template: dict[str, Any], *, endpoint_url: str, stack_name: str, region: str = "us-east-1"
) -> dict[str, str]:
    """Creates (or updates) the stack, waits for it, then applies what the emulator ignores (TTL); its outputs."""
    session = boto3.session.Session(region_name=region)
    cloudformation = session.client("cloudformation", endpoint_url=endpoint_url)
    if "BootstrapVersion" in template.get("Parameters", {}):
        session.client("ssm", endpoint_url=endpoint_url).put_parameter(
            Name=BOOTSTRAP_VERSION_PARAMETER, Value="30", Type="String", Overwrite=True
        )
    body = json.dumps(template)
    existing = _stack_status(cloudformation, stack_name)
    if existing is None:
        cloudformation.create_stack(StackName=stack_name, TemplateBody=body)
    elif existing.endswith("_COMPLETE") and "ROLLBACK" not in existing and "DELETE" not in existing:
        try:
            cloudformation.update_stack(StackName=stack_name, TemplateBody=body)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
    else:
        raise RuntimeError(f"stack {stack_name} is in state {existing}; delete it first")
    stack = _wait_for_stack(cloudformation, stack_name)
    _apply_time_to_live(session.client("dynamodb", endpoint_url=endpoint_url), cloudformation, stack_name, template)
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def _stack_status(cloudformation: Any, stack_name: str) -> str | None:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    status: str = stacks[0]["StackStatus"]
    return None if status == "DELETE_COMPLETE" else status


def _wait_for_stack(cloudformation: Any, stack_name: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    while True:
        stack: dict[str, Any] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            return stack
        if not status.endswith("_IN_PROGRESS"):
            raise RuntimeError(f"stack {stack_name} ended {status}: {_failure_reasons(cloudformation, stack_name)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"stack {stack_name} still {status} after {DEPLOY_TIMEOUT_S} s")
        time.sleep(0.2)  # polling the emulator's CloudFormation; it has no push notification


def _failure_reasons(cloudformation: Any, stack_name: str) -> str:
    events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
    reasons = [
        f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason', '')}"
        for event in events
        if event.get("ResourceStatus", "").endswith("FAILED")
    ]
    return "; ".join(reasons) or "no reason given"


def _apply_time_to_live(dynamodb: Any, cloudformation: Any, stack_name: str, template: dict[str, Any]) -> None:
    # moto's CloudFormation ignores TimeToLiveSpecification: apply what the template asks for.
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        spec = resource.get("Properties", {}).get("TimeToLiveSpecification")
        if not spec or not spec.get("Enabled"):
            continue
        table_name = cloudformation.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical_id)[
            "StackResourceDetail"
        ]["PhysicalResourceId"]
        current = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            continue
        dynamodb.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": spec["AttributeName"]},
        )


def provision(*, endpoint_url: str, env_name: str = LOCAL_ENV, region: str = "us-east-1") -> LocalResources:
    """The stateful stack of `env_name`, synthesized (or cached) and deployed into the emulator."""
    stack_name = f"JobTickets-{env_name}-stateful"
    return deploy(stateful_template(env_name), endpoint_url=endpoint_url, stack_name=stack_name, region=region)
