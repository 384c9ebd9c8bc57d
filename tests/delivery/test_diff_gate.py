"""The diff gate's verdicts on pairs of synthesized templates, cross-checked with the CDK CLI's own diff."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import pytest

from tools.diff_gate.assembly import assembly_region, assembly_stacks, check_assembly, fetch_deployed
from tools.diff_gate.classify import classify_stack
from tools.diff_gate.cli import main
from tools.diff_gate.report import COMMENT_MARKER, render_comment, render_report
from tools.diff_gate.templates import replacement_paths
from tools.diff_gate.verdict import OVERRIDE_LABEL, ChangeKind, GateInputError, ResourceChange, Verdict, decide

REPO_ROOT = Path(__file__).resolve().parents[2]


# --- real synthesized templates: one app per stack kind, one stack per variant (one synth each) ----------------


@dataclass(frozen=True)
class Synthesized:
    outdir: Path
    templates: dict[str, dict[str, Any]]  # variant -> template

    def stack_name(self, variant: str) -> str:
        return f"Gate-{variant}"


def _add_alarm(stack: Any) -> None:
    from aws_cdk import aws_cloudwatch as cloudwatch

    cloudwatch.Alarm(
        stack,
        "OldestJobAlarm",
        metric=stack.queues.jobs_queue.metric_approximate_age_of_oldest_message(),
        threshold=900,
        evaluation_periods=3,
    )


@pytest.fixture(scope="session")
def stateful(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """prod's real stateful stack (retained, termination-protected) and changed versions of it.

    Code changes (an alarm, a configuration value) are synthesized, in one app: logical IDs depend on the construct
    path inside a stack, not on the stack's name, so the copies compare with the baseline exactly as two versions
    of one stack would. Escape-hatch style changes (a property override, a new logical ID) are applied to the
    synthesized baseline the way CDK writes them, which keeps this fixture at one synth of three stacks."""
    from stacks.application import new_app
    from stacks.config import get_config
    from stacks.stateful_stack import StatefulStack

    config = get_config("prod")
    longer = replace(config, worker=replace(config.worker, visibility_timeout_s=config.worker.visibility_timeout_s * 2))
    outdir = tmp_path_factory.mktemp("stateful-variants")
    app = new_app(outdir=str(outdir))
    stacks = {
        "baseline": StatefulStack(app, "Gate-baseline", config=config),
        "alarm": StatefulStack(app, "Gate-alarm", config=config),
        "longer-visibility": StatefulStack(app, "Gate-longer-visibility", config=longer),
    }
    _add_alarm(stacks["alarm"])
    assembly = app.synth()
    templates = {variant: assembly.get_stack_artifact(stack.artifact_id).template for variant, stack in stacks.items()}

    baseline = templates["baseline"]
    table = _logical_id(baseline, "AWS::DynamoDB::Table", "JobStoreTable")
    queue = _logical_id(baseline, "AWS::SQS::Queue", "QueuesJobsQueue")
    edits: dict[str, dict[str, Any]] = {
        "table-key": _override(
            baseline,
            table,
            KeySchema=[{"AttributeName": "ticketId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "ticketId", "AttributeType": "S"}],
        ),
        "queue-name": _override(baseline, queue, QueueName="job-tickets-prod-jobs"),
        "parameter-name": _override(
            baseline,
            _logical_id(baseline, "AWS::SSM::Parameter", "Parametersqueueurl"),
            Name="/job-tickets/prod/jobs-queue",
        ),
        "bucket-name": _override(
            baseline, _logical_id(baseline, "AWS::S3::Bucket", "DocumentsBucket"), BucketName="job-tickets-prod-docs"
        ),
        "queue-logical-id": _rename(baseline, queue, "QueuesTicketsQueue"),
    }
    for variant, template in edits.items():
        (outdir / f"Gate-{variant}.template.json").write_text(json.dumps(template))
        templates[variant] = template
    _add_to_manifest(outdir, edits)
    return Synthesized(outdir, templates)


def _logical_id(template: dict[str, Any], resource_type: str, prefix: str = "") -> str:
    """The logical ID of the one resource of `resource_type` whose ID (the construct path) starts with `prefix`."""
    found = [
        lid
        for lid, resource in template["Resources"].items()
        if resource["Type"] == resource_type and lid.startswith(prefix)
    ]
    assert len(found) == 1, f"expected one {resource_type} with an ID starting {prefix!r}, found {found}"
    return found[0]


def _override(template: dict[str, Any], logical_id: str, **properties: Any) -> dict[str, Any]:
    """What `CfnResource.add_property_override` writes."""
    changed = copy.deepcopy(template)
    changed["Resources"][logical_id]["Properties"].update(properties)
    return changed


def _rename(template: dict[str, Any], logical_id: str, new_id: str) -> dict[str, Any]:
    """What `CfnResource.override_logical_id` (or a moved construct) writes: every Ref and GetAtt follows."""
    return cast(dict[str, Any], json.loads(json.dumps(template).replace(f'"{logical_id}"', f'"{new_id}"')))


def _add_to_manifest(outdir: Path, variants: dict[str, Any]) -> None:
    """Lists the edited templates in the cloud assembly, so `cdk diff --app <outdir>` can select them."""
    manifest_file = outdir / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    base = manifest["artifacts"]["Gate-baseline"]
    for variant in variants:
        artifact = copy.deepcopy(base)
        artifact["properties"]["templateFile"] = f"Gate-{variant}.template.json"
        artifact["properties"].pop("stackName", None)
        artifact["displayName"] = f"Gate-{variant}"
        artifact.pop("dependencies", None)
        artifact.pop("metadata", None)
        manifest["artifacts"][f"Gate-{variant}"] = artifact
    manifest_file.write_text(json.dumps(manifest))


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """dev's real service stack, and the same with bigger worker tasks, both on one stateful stack."""
    from stacks.application import REPO_ROOT as SOURCE
    from stacks.application import new_app
    from stacks.config import get_config
    from stacks.service_stack import ServiceStack
    from stacks.stateful_stack import StatefulStack

    config = get_config("dev")
    bigger = replace(
        config, worker=replace(config.worker, cpu=config.worker.cpu * 2, memory_mib=config.worker.memory_mib * 2)
    )
    outdir = tmp_path_factory.mktemp("service-variants")
    # The image context only feeds the asset hash, the same in both variants: the Dockerfile alone keeps the
    # asset staging from copying the repository's build state (wheels, images) on every run.
    context = tmp_path_factory.mktemp("image-context")
    shutil.copy(SOURCE / "Dockerfile", context / "Dockerfile")
    app = new_app(outdir=str(outdir))
    stateful_stack = StatefulStack(app, f"{config.stack_prefix}-stateful", config=config)
    stacks = {
        variant: ServiceStack(
            app, f"Gate-{variant}", config=cfg, stateful=stateful_stack, source_directory=str(context)
        )
        for variant, cfg in {"baseline": config, "task-size": bigger}.items()
    }
    assembly = app.synth()
    return Synthesized(
        outdir, {variant: assembly.get_stack_artifact(stack.artifact_id).template for variant, stack in stacks.items()}
    )


def gate(synth: Synthesized, variant: str, labels: tuple[str, ...] = ()) -> Verdict:
    return decide("prod", classify_stack("stack", synth.templates["baseline"], synth.templates[variant]), labels)


def kinds(verdict: Verdict) -> dict[str, tuple[str, ChangeKind, bool]]:
    return {change.logical_id: (change.resource_type, change.kind, change.stateful) for change in verdict.changes}


# --- verdicts on the real stacks ------------------------------------------------------------------------------


def test_unchanged_stack_has_no_changes_and_passes(stateful: Synthesized) -> None:
    verdict = gate(stateful, "baseline")
    assert verdict.changes == ()
    assert verdict.passed and verdict.exit_code == 0


def test_changed_table_key_replaces_the_table_and_fails(stateful: Synthesized) -> None:
    verdict = gate(stateful, "table-key")
    [blocking] = verdict.destructive
    assert (blocking.resource_type, blocking.kind) == ("AWS::DynamoDB::Table", ChangeKind.REPLACED)
    assert "KeySchema" in blocking.reasons
    assert blocking.retained  # prod keeps the old table: the report says so
    assert not verdict.passed and verdict.exit_code == 1


def test_renamed_queue_logical_id_is_a_removal_and_fails(stateful: Synthesized) -> None:
    verdict = gate(stateful, "queue-logical-id")
    changes = kinds(verdict)
    removed = [lid for lid, (rtype, kind, _) in changes.items() if kind is ChangeKind.REMOVED]
    assert len(removed) == 1 and changes[removed[0]][0] == "AWS::SQS::Queue"
    assert changes["QueuesTicketsQueue"] == ("AWS::SQS::Queue", ChangeKind.ADDED, True)
    # Everything that names the queue follows it: the queue policy and the queue-url parameter change in place.
    assert ("AWS::SSM::Parameter", ChangeKind.MODIFIED, True) in changes.values()
    assert [change.logical_id for change in verdict.destructive] == removed
    assert verdict.exit_code == 1


def test_explicit_queue_name_replaces_the_queue_and_fails(stateful: Synthesized) -> None:
    verdict = gate(stateful, "queue-name")
    [blocking] = verdict.destructive
    assert (blocking.resource_type, blocking.kind, blocking.reasons) == (
        "AWS::SQS::Queue",
        ChangeKind.REPLACED,
        ("QueueName",),
    )
    assert verdict.exit_code == 1


def test_renamed_parameter_and_named_bucket_are_replacements(stateful: Synthesized) -> None:
    for variant, resource_type, reason in (
        ("parameter-name", "AWS::SSM::Parameter", "Name"),
        ("bucket-name", "AWS::S3::Bucket", "BucketName"),
    ):
        verdict = gate(stateful, variant)
        assert [(c.resource_type, c.kind, c.reasons) for c in verdict.destructive] == [
            (resource_type, ChangeKind.REPLACED, (reason,))
        ], variant
        assert verdict.exit_code == 1


def test_added_alarm_passes_and_is_shown(stateful: Synthesized) -> None:
    verdict = gate(stateful, "alarm")
    assert [(c.resource_type, c.kind, c.stateful) for c in verdict.changes] == [
        ("AWS::CloudWatch::Alarm", ChangeKind.ADDED, False)
    ]
    assert verdict.passed
    assert "AWS::CloudWatch::Alarm" in render_report(verdict)


def test_configuration_change_modifies_stateful_resources_in_place_and_passes(stateful: Synthesized) -> None:
    verdict = gate(stateful, "longer-visibility")
    changes = kinds(verdict)
    assert {kind for _, kind, _ in changes.values()} == {ChangeKind.MODIFIED}
    assert {rtype for rtype, _, _ in changes.values()} == {"AWS::SQS::Queue", "AWS::SSM::Parameter"}
    assert verdict.passed and verdict.destructive == ()


def test_new_task_size_replaces_only_stateless_resources_and_passes(service: Synthesized) -> None:
    verdict = gate(service, "task-size")
    task_definitions = [c for c in verdict.changes if c.resource_type == "AWS::ECS::TaskDefinition"]
    assert task_definitions and {c.kind for c in task_definitions} == {ChangeKind.REPLACED}
    assert any({"Cpu", "Memory"} & set(c.reasons) for c in task_definitions)
    assert not any(c.stateful for c in verdict.changes)
    assert verdict.passed


def test_override_label_lets_a_destructive_change_through(stateful: Synthesized) -> None:
    blocked = gate(stateful, "table-key", labels=("documentation",))
    allowed = gate(stateful, "table-key", labels=("documentation", OVERRIDE_LABEL))
    assert blocked.exit_code == 1
    assert allowed.exit_code == 0 and allowed.overridden
    assert allowed.destructive == blocked.destructive  # still reported, just not blocking
    assert f"passes by override (`{OVERRIDE_LABEL}`)" in render_report(allowed)
    assert f"Add the label `{OVERRIDE_LABEL}`" in render_report(blocked)
    assert "| ⚠️ | stack | `JobStoreTable" in render_report(allowed)
    assert "| ❌ | stack | `JobStoreTable" in render_report(blocked)


# --- the rules on small templates -----------------------------------------------------------------------------


def _template(**resources: dict[str, Any]) -> dict[str, Any]:
    return {"Resources": resources}


def test_resources_with_a_retain_policy_are_stateful_whatever_their_type() -> None:
    key = {"Type": "AWS::KMS::Key", "Properties": {"Description": "a"}, "DeletionPolicy": "Retain"}
    log_group = {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}}
    [removed_key, removed_logs] = classify_stack("s", _template(Key=key, Logs=log_group), _template())
    assert (removed_key.logical_id, removed_key.destructive, removed_key.retained) == ("Key", True, True)
    assert (removed_logs.logical_id, removed_logs.destructive) == ("Logs", False)


def test_a_changed_type_is_a_replacement() -> None:
    old = _template(Table={"Type": "AWS::DynamoDB::Table", "Properties": {}})
    new = _template(Table={"Type": "AWS::DynamoDB::GlobalTable", "Properties": {}})
    [change] = classify_stack("s", old, new)
    assert change.kind is ChangeKind.REPLACED and change.destructive


def test_replacement_spreads_through_references_in_replacing_properties() -> None:
    # A parameter whose Name is built from a replaced queue's name is replaced with it.
    queue = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "a"}}
    parameter = {
        "Type": "AWS::SSM::Parameter",
        "Properties": {"Name": {"Fn::Sub": "/app/${Queue.QueueName}"}, "Type": "String", "Value": "x"},
    }
    new_queue = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "b"}}
    changes = {
        c.logical_id: c
        for c in classify_stack("s", _template(Queue=queue, P=parameter), _template(Queue=new_queue, P=parameter))
    }
    assert changes["P"].kind is ChangeKind.REPLACED
    assert changes["P"].reasons == ("Name refers to replaced Queue",)


def test_metadata_and_cdk_metadata_resource_are_not_changes() -> None:
    queue = {"Type": "AWS::SQS::Queue", "Properties": {}, "Metadata": {"aws:cdk:path": "a/Queue"}}
    moved = {**queue, "Metadata": {"aws:cdk:path": "b/Queue"}}
    cdk_metadata = {"Type": "AWS::CDK::Metadata", "Properties": {"Analytics": "v2:x"}}
    assert classify_stack("s", _template(Q=queue), _template(Q=moved, CDKMetadata=cdk_metadata)) == []


def test_the_spec_knows_the_replacing_properties_of_the_stateful_types() -> None:
    assert {"/properties/TableName", "/properties/KeySchema"} <= set(replacement_paths("AWS::DynamoDB::Table"))
    assert {"/properties/QueueName", "/properties/FifoQueue"} <= set(replacement_paths("AWS::SQS::Queue"))
    assert "/properties/BucketName" in replacement_paths("AWS::S3::Bucket")
    assert "/properties/Name" in replacement_paths("AWS::SSM::Parameter")
    # A parameter's Type changes in place (CloudFormation's spec, and the CDK CLI agrees).
    assert "/properties/Type" not in replacement_paths("AWS::SSM::Parameter")
    assert replacement_paths("AWS::Nothing::Known") == ()


@pytest.mark.parametrize(
    ("resource_type", "before", "after", "kind"),
    [
        ("AWS::SSM::Parameter", {"Name": "/a", "Type": "String"}, {"Name": "/a", "Type": "StringList"}, "modified"),
        ("AWS::SSM::Parameter", {"Name": "/a", "Type": "String"}, {"Name": "/b", "Type": "String"}, "replaced"),
        ("AWS::SQS::Queue", {}, {"FifoQueue": True}, "replaced"),
        ("AWS::SQS::Queue", {"VisibilityTimeout": 30}, {"VisibilityTimeout": 60}, "modified"),
        ("AWS::DynamoDB::Table", {"TableName": "a"}, {"TableName": "b"}, "replaced"),
        ("AWS::DynamoDB::Table", {"BillingMode": "PROVISIONED"}, {"BillingMode": "PAY_PER_REQUEST"}, "modified"),
        ("AWS::S3::Bucket", {}, {"ObjectLockEnabled": True}, "replaced"),
        ("AWS::S3::Bucket", {}, {"VersioningConfiguration": {"Status": "Enabled"}}, "modified"),
    ],
)
def test_update_behaviour_of_stateful_properties(
    resource_type: str, before: dict[str, Any], after: dict[str, Any], kind: str
) -> None:
    old = _template(R={"Type": resource_type, "Properties": before})
    new = _template(R={"Type": resource_type, "Properties": after})
    [change] = classify_stack("s", old, new)
    assert change.kind is {"modified": ChangeKind.MODIFIED, "replaced": ChangeKind.REPLACED}[kind]
    assert decide("dev", [change]).passed is (kind == "modified")


def test_nested_replacing_paths_compare_only_the_named_values() -> None:
    # S3 lifecycle transitions are nested write-only paths, not replacing ones: a changed rule is in place.
    rules = {"LifecycleConfiguration": {"Rules": [{"Status": "Enabled", "ExpirationInDays": 30}]}}
    later = {"LifecycleConfiguration": {"Rules": [{"Status": "Enabled", "ExpirationInDays": 60}]}}
    [change] = classify_stack(
        "s",
        _template(B={"Type": "AWS::S3::Bucket", "Properties": rules}),
        _template(B={"Type": "AWS::S3::Bucket", "Properties": later}),
    )
    assert (change.kind, change.changed) == (ChangeKind.MODIFIED, ("LifecycleConfiguration",))


# --- the command line on a cloud assembly ---------------------------------------------------------------------


def _single_stack_assembly(root: Path, stack_name: str, template: dict[str, Any]) -> Path:
    assembly = root / "assembly"
    assembly.mkdir(parents=True)
    (assembly / f"{stack_name}.template.json").write_text(json.dumps(template))
    manifest = {
        "version": "48.0.0",
        "artifacts": {
            stack_name: {
                "type": "aws:cloudformation:stack",
                "environment": "aws://unknown-account/unknown-region",
                "properties": {"templateFile": f"{stack_name}.template.json"},
            }
        },
    }
    (assembly / "manifest.json").write_text(json.dumps(manifest))
    return assembly


def test_stack_list_of_the_synthesized_assembly(stateful: Synthesized) -> None:
    names = [stack.stack_name for stack in assembly_stacks(stateful.outdir)]
    assert names == sorted(f"Gate-{variant}" for variant in stateful.templates)


def _assembly_with_regions(tmp_path: Path, *environments: str) -> Path:
    artifacts = {
        f"Stack{index}": {
            "type": "aws:cloudformation:stack",
            "environment": environment,
            "properties": {"templateFile": f"Stack{index}.template.json"},
        }
        for index, environment in enumerate(environments)
    }
    tmp_path.mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"version": "48.0.0", "artifacts": artifacts}))
    return tmp_path


def test_region_is_the_one_every_stack_targets_and_a_disagreeing_variable_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _assembly_with_regions(tmp_path / "one", "aws://unknown-account/eu-west-1", "aws://123/eu-west-1")
    assert assembly_region(one) == assembly_region(one, "") == assembly_region(one, "eu-west-1") == "eu-west-1"
    with pytest.raises(GateInputError, match=r"vars\.AWS_REGION is 'us-east-1' but the stacks target 'eu-west-1'"):
        assembly_region(one, "us-east-1")
    mixed = _assembly_with_regions(tmp_path / "mixed", "aws://a/eu-west-1", "aws://a/us-east-1")
    with pytest.raises(GateInputError, match="several regions: eu-west-1, us-east-1"):
        assembly_region(mixed)
    agnostic = _assembly_with_regions(tmp_path / "agnostic", "aws://unknown-account/unknown-region")
    with pytest.raises(GateInputError, match="has no region"):
        assembly_region(agnostic)
    assert main(["region", "--assembly", str(one), "--expect", "eu-west-1"]) == 0
    assert capsys.readouterr().out == "eu-west-1\n"
    assert main(["region", "--assembly", str(mixed)]) == 2
    assert "several regions" in capsys.readouterr().err


def test_check_command_writes_the_report_and_exits_by_verdict(
    stateful: Synthesized, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = "JobTickets-prod-stateful"
    assembly = _single_stack_assembly(tmp_path, stack, stateful.templates["table-key"])
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    (baseline / f"{stack}.template.json").write_text(json.dumps(stateful.templates["baseline"]))
    cdk_diff = tmp_path / "cdk-diff.txt"
    cdk_diff.write_text("[~] AWS::DynamoDB::Table JobStore/Table replace\n")
    report = tmp_path / "reports" / "prod.md"
    args = ["check", "--env", "prod", "--assembly", str(assembly), "--baseline", str(baseline)]
    args += ["--cdk-diff", str(cdk_diff), "--report", str(report)]

    assert main([*args, "--labels", '["documentation"]']) == 1
    text = report.read_text()
    assert text.startswith("### ❌ `prod`: blocked")
    assert "| ❌ | JobTickets-prod-stateful | `JobStoreTable" in text
    assert "[~] AWS::DynamoDB::Table JobStore/Table replace" in text
    assert main([*args, "--labels", f'["documentation", "{OVERRIDE_LABEL}"]']) == 0
    assert main([*args, "--labels", f"documentation,{OVERRIDE_LABEL}"]) == 0
    capsys.readouterr()


def test_a_stack_not_deployed_yet_is_all_additions_and_passes(stateful: Synthesized, tmp_path: Path) -> None:
    assembly = _single_stack_assembly(tmp_path, "JobTickets-prod-stateful", stateful.templates["baseline"])
    verdict = check_assembly("prod", assembly, tmp_path / "no-baseline")
    assert verdict.passed and {c.kind for c in verdict.changes} == {ChangeKind.ADDED}


def test_unreadable_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--env", "dev", "--assembly", str(tmp_path), "--baseline", str(tmp_path)])
    assert code == 2
    assert "no cloud assembly manifest" in capsys.readouterr().err


def test_yaml_baseline_with_short_forms_is_read(tmp_path: Path) -> None:
    stack = "S"
    new = _template(Q={"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-q"}}})
    assembly = _single_stack_assembly(tmp_path, stack, new)
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    (baseline / f"{stack}.template.json").write_text(
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Sub '${AWS::StackName}-q'\n"
    )
    assert check_assembly("dev", assembly, baseline).changes == ()


def test_one_comment_holds_every_environment_in_order(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    for env, mark in (("prod", "❌"), ("dev", "✅"), ("staging", "✅")):
        (reports / f"{env}.md").write_text(f"### {mark} `{env}`\n")
    out = tmp_path / "comment.md"
    args = ["comment", "--reports", str(reports), "--out", str(out), "--head-sha", "abc123", "--run-url", "https://r"]
    assert main(args) == 0
    body = out.read_text()
    assert body.startswith(COMMENT_MARKER)
    assert body.index("`dev`") < body.index("`staging`") < body.index("`prod`")
    assert "For commit abc123, [workflow run](https://r)." in body


def test_the_comment_names_an_environment_whose_job_failed_before_the_gate(tmp_path: Path) -> None:
    (tmp_path / "dev.md").write_text("### ✅ `dev`: passes\n")
    out = tmp_path / "comment.md"
    assert main(["comment", "--reports", str(tmp_path), "--out", str(out), "--envs", "dev,staging,prod"]) == 0
    body = out.read_text()
    assert "### ⚠️ `staging`: no verdict" in body and "### ⚠️ `prod`: no verdict" in body
    assert "### ✅ `dev`: passes" in body


def test_long_cdk_diff_output_is_truncated_to_fit_a_comment() -> None:
    change = ResourceChange("s", "Q", "AWS::SQS::Queue", ChangeKind.MODIFIED, True, changed=("VisibilityTimeout",))
    report = render_report(decide("dev", [change]), "x" * 200_000)
    comment = render_comment({"dev": report, "staging": report, "prod": report})
    assert len(comment) < 65_536
    assert "truncated" in report


# --- fetching the deployed templates (GetTemplate against the emulator) ---------------------------------------


@pytest.fixture()
def emulator_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


def test_fetch_writes_deployed_templates_and_skips_stacks_not_deployed(emulator_env: str, tmp_path: Path) -> None:
    import boto3

    deployed = _template(Q={"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 60}})
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    cloudformation.create_stack(StackName="GateFetch-deployed", TemplateBody=json.dumps(deployed))
    assembly = tmp_path / "assembly"
    assembly.mkdir()
    artifacts = {
        name: {
            "type": "aws:cloudformation:stack",
            "environment": "aws://unknown-account/us-east-1",
            "properties": {"templateFile": f"{name}.template.json"},
        }
        for name in ("GateFetch-deployed", "GateFetch-new")
    }
    (assembly / "manifest.json").write_text(json.dumps({"version": "48.0.0", "artifacts": artifacts}))

    result = fetch_deployed(assembly, tmp_path / "baseline")

    assert result == {"GateFetch-deployed": True, "GateFetch-new": False}
    assert json.loads((tmp_path / "baseline" / "GateFetch-deployed.template.json").read_text()) == deployed
    assert not (tmp_path / "baseline" / "GateFetch-new.template.json").exists()


# --- cross-check: the CDK CLI's `cdk diff --template` on the same pairs -----------------------------------------


@pytest.fixture(scope="session")
def cdk_cli() -> Path:
    """The CLI pinned in package.json (installed by `make install`)."""
    cli = REPO_ROOT / "node_modules" / ".bin" / "cdk"
    if cli.exists():
        return cli
    package = REPO_ROOT / "package.json"
    if package.exists() and '"aws-cdk"' in package.read_text():
        pytest.fail("the CDK CLI is pinned in package.json but not installed: run `make install`")
    pytest.skip("the CDK CLI is not pinned in package.json yet")


# variant -> the fixture that synthesized it
CLI_CASES = {"table-key": "stateful", "queue-logical-id": "stateful", "alarm": "stateful", "task-size": "service"}


def _cdk_diff(cli: Path, synth: Synthesized, variant: str) -> tuple[int, str]:
    """`cdk diff --template <baseline> --fail-on destructive`: offline, no credentials."""
    baseline = synth.outdir / f"{synth.stack_name('baseline')}.template.json"
    env = {
        **os.environ,
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    args = ["diff", "--app", str(synth.outdir), "--template", str(baseline), synth.stack_name(variant)]
    args += ["--fail-on", "destructive", "--exclusively", "--no-color", "--no-notices"]
    done = subprocess.run(
        [str(cli), *args], capture_output=True, text=True, env=env, cwd=synth.outdir, timeout=180, check=False
    )
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="session")
def cli_diffs(cdk_cli: Path, stateful: Synthesized, service: Synthesized) -> dict[str, tuple[int, str]]:
    """Every case through the CLI at once: each run is mostly Node startup and loading the resource spec."""
    from concurrent.futures import ThreadPoolExecutor

    synths = {"stateful": stateful, "service": service}
    with ThreadPoolExecutor(max_workers=len(CLI_CASES)) as pool:
        futures = {v: pool.submit(_cdk_diff, cdk_cli, synths[kind], v) for v, kind in CLI_CASES.items()}
        return {variant: future.result() for variant, future in futures.items()}


def test_cdk_cli_agrees_on_destructive_stateful_changes(
    cli_diffs: dict[str, tuple[int, str]], stateful: Synthesized
) -> None:
    for variant in ("table-key", "queue-logical-id"):
        code, output = cli_diffs[variant]
        assert code == 1, f"{variant}: cdk diff --fail-on destructive passed:\n{output}"
        for change in gate(stateful, variant).destructive:
            assert change.logical_id in output, f"{variant}: {change.logical_id} missing from:\n{output}"
    assert "KeySchema (requires replacement)" in cli_diffs["table-key"][1]


def test_cdk_cli_agrees_on_an_added_alarm(cli_diffs: dict[str, tuple[int, str]], stateful: Synthesized) -> None:
    code, output = cli_diffs["alarm"]
    assert code == 0, f"cdk diff --fail-on destructive failed:\n{output}"
    assert "AWS::CloudWatch::Alarm" in output
    assert gate(stateful, "alarm").passed


def test_cdk_cli_fails_a_task_size_change_the_gate_lets_through(
    cli_diffs: dict[str, tuple[int, str]], service: Synthesized
) -> None:
    # The CLI's --fail-on destructive counts any replacement, stateless ones included: the reason the gate
    # decides itself, and only stateful replacements block.
    code, output = cli_diffs["task-size"]
    assert code == 1 and "AWS::ECS::TaskDefinition" in output
    assert gate(service, "task-size").passed


def test_a_long_table_is_shortened_but_keeps_every_blocking_change() -> None:
    added = [ResourceChange("a-stack", f"Thing{i:03}", "AWS::SNS::Topic", ChangeKind.ADDED, False) for i in range(100)]
    removed = ResourceChange("z-stack", "Table", "AWS::DynamoDB::Table", ChangeKind.REMOVED, True)
    verdict = decide("prod", [*added, removed])
    short, full = render_report(verdict), render_report(verdict, max_rows=None)
    assert "`Table`" in short and "and 41 more: see the job log" in short
    assert "`Thing099`" in full and "more: see the job log" not in full
