"""Synthesized cloud assemblies: their stacks and region, the deployed templates, and the verdict over all stacks."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.diff_gate.classify import classify_stack
from tools.diff_gate.templates import load_template
from tools.diff_gate.verdict import OVERRIDE_LABEL, GateInputError, ResourceChange, Verdict, decide


@dataclass(frozen=True)
class StackArtifact:
    stack_name: str
    template_file: Path
    region: str | None


def assembly_stacks(assembly: Path) -> list[StackArtifact]:
    """The CloudFormation stacks of a synthesized cloud assembly (cdk.out), nested stage assemblies included."""
    manifest_file = assembly / "manifest.json"
    if not manifest_file.is_file():
        raise GateInputError(f"no cloud assembly manifest: {manifest_file}")
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    found: list[StackArtifact] = []
    for artifact_id, artifact in (manifest.get("artifacts") or {}).items():
        properties = artifact.get("properties") or {}
        if artifact.get("type") == "aws:cloudformation:stack":
            environment = str(artifact.get("environment", ""))
            region = environment.rsplit("/", 1)[-1] if environment.startswith("aws://") else None
            found.append(
                StackArtifact(
                    properties.get("stackName", artifact_id),
                    assembly / properties["templateFile"],
                    None if region in (None, "", "unknown-region") else region,
                )
            )
        elif artifact.get("type") == "aws:cloud-assembly":
            found.extend(assembly_stacks(assembly / properties["directoryName"]))
    return sorted(found, key=lambda stack: stack.stack_name)


def assembly_region(assembly: Path, expected: str | None = None) -> str:
    """The one region every stack of `assembly` targets: the environment config's (stacks/config.py).

    `expected` is the GitHub variable AWS_REGION when it is set: it must name the same region, so that
    credentials, deploy and diff gate never silently work in a region the stacks were not synthesized for."""
    regions = {stack.region for stack in assembly_stacks(assembly)}
    if not regions:
        raise GateInputError(f"no stacks in the assembly: {assembly}")
    if None in regions:
        raise GateInputError(f"a stack of {assembly} has no region: give the environment one in stacks/config.py")
    if len(regions) > 1:
        raise GateInputError(f"the stacks of {assembly} target several regions: {', '.join(sorted(map(str, regions)))}")
    region = str(regions.pop())
    if expected and expected.strip() != region:
        raise GateInputError(
            f"vars.AWS_REGION is {expected.strip()!r} but the stacks target {region!r} (stacks/config.py): "
            "change one so that they agree"
        )
    return region


def baseline_file(baseline: Path, stack_name: str) -> Path:
    return baseline / f"{stack_name}.template.json"


def fetch_deployed(assembly: Path, out: Path, *, default_region: str | None = None) -> dict[str, bool]:
    """Writes each deployed stack's template (GetTemplate, stage Original) to `out`; a stack that does not exist
    yet gets no file. Returns stack name -> deployed. Any other error (access denied, throttling) is raised."""
    import boto3
    from botocore.exceptions import ClientError

    out.mkdir(parents=True, exist_ok=True)
    deployed: dict[str, bool] = {}
    clients: dict[str | None, Any] = {}
    for stack in assembly_stacks(assembly):
        region = stack.region or default_region
        if region not in clients:
            clients[region] = boto3.client("cloudformation", region_name=region)
        try:
            body = clients[region].get_template(StackName=stack.stack_name, TemplateStage="Original")["TemplateBody"]
        except ClientError as error:
            if "does not exist" in str(error):
                deployed[stack.stack_name] = False
                continue
            raise
        text = body if isinstance(body, str) else json.dumps(body)
        baseline_file(out, stack.stack_name).write_text(text, encoding="utf-8")
        deployed[stack.stack_name] = True
    return deployed


def check_assembly(
    env: str, assembly: Path, baseline: Path, labels: Iterable[str] = (), *, override_label: str = OVERRIDE_LABEL
) -> Verdict:
    """The verdict for every stack of `assembly` against the templates in `baseline` (missing: not deployed)."""
    changes: list[ResourceChange] = []
    for stack in assembly_stacks(assembly):
        old_file = baseline_file(baseline, stack.stack_name)
        old = load_template(old_file) if old_file.is_file() else {"Resources": {}}
        changes.extend(classify_stack(stack.stack_name, old, load_template(stack.template_file)))
    return decide(env, changes, labels, override_label=override_label)
