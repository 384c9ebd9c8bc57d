"""The pull-request diff gate: classify every resource change between deployed and new CloudFormation templates,
and block replacements or removals of stateful resources unless the pull request carries the override label.

    python -m tools.diff_gate stacks  --assembly DIR                     stack names of a synthesized assembly
    python -m tools.diff_gate region  --assembly DIR [--expect REGION]   the one region its stacks target
    python -m tools.diff_gate fetch   --assembly DIR --out DIR           deployed templates (GetTemplate)
    python -m tools.diff_gate check   --assembly DIR --baseline DIR --env ENV [--labels a,b] [--cdk-diff FILE]
                                       [--report FILE]                    exit 0 passes, 1 blocked, 2 bad input
    python -m tools.diff_gate comment --reports DIR --out FILE [--envs dev,staging,prod] [--head-sha SHA]
                                       [--run-url URL]                    one pull-request comment from all reports
"""

from __future__ import annotations

import argparse
import enum
import importlib.util
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

OVERRIDE_LABEL = "allow-stateful-change"
# The hidden marker the comment job searches for, so the gate edits its one comment instead of adding another.
COMMENT_MARKER = "<!-- job-tickets:diff-gate -->"

# Resources that hold data or configuration a running system depends on; replacing one loses it.
STATEFUL_TYPES = frozenset(
    {
        "AWS::DynamoDB::Table",
        "AWS::DynamoDB::GlobalTable",
        "AWS::SQS::Queue",
        "AWS::S3::Bucket",
        "AWS::SSM::Parameter",
    }
)
RETAINING_POLICIES = frozenset({"Retain", "RetainExceptOnCreate", "Snapshot"})

# The registry schemas cfn-lint ships miss a few properties that the legacy resource specification (and the
# CloudFormation user guide) mark "Update requires: Replacement"; the CDK CLI merges the same ones.
EXTRA_REPLACEMENT_PATHS: Mapping[str, tuple[str, ...]] = {
    "AWS::DynamoDB::Table": ("/properties/KeySchema", "/properties/LocalSecondaryIndexes"),
    "AWS::S3::Bucket": ("/properties/ObjectLockEnabled",),
}

# Resource attributes whose change alters the deployed resource; Metadata and DependsOn do not.
COMPARED_ATTRIBUTES = ("Type", "Properties", "DeletionPolicy", "UpdateReplacePolicy", "Condition", "UpdatePolicy")
IGNORED_TYPES = frozenset({"AWS::CDK::Metadata"})
# GitHub rejects comments above 65,536 characters; three environments with table and cdk diff output must fit.
MAX_COMMENT_CHARS = 65_000
MAX_CDK_DIFF_CHARS = 8_000
MAX_TABLE_ROWS = 60
OPEN_TABLE_ROWS = 15


class ChangeKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    REPLACED = "replaced"
    MODIFIED = "modified in place"


@dataclass(frozen=True)
class ResourceChange:
    stack: str
    logical_id: str
    resource_type: str
    kind: ChangeKind
    stateful: bool
    # Changed properties (top-level names), and for a replacement why it happens.
    changed: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    retained: bool = False

    @property
    def destructive(self) -> bool:
        """A stateful resource is deleted or orphaned (removed) or created anew (replaced): its data is gone."""
        return self.stateful and self.kind in (ChangeKind.REMOVED, ChangeKind.REPLACED)


@dataclass(frozen=True)
class Verdict:
    env: str
    changes: tuple[ResourceChange, ...]
    override_label: str = OVERRIDE_LABEL
    labels: frozenset[str] = field(default_factory=frozenset)

    @property
    def destructive(self) -> tuple[ResourceChange, ...]:
        return tuple(change for change in self.changes if change.destructive)

    @property
    def overridden(self) -> bool:
        return bool(self.destructive) and self.override_label in self.labels

    @property
    def passed(self) -> bool:
        return not self.destructive or self.override_label in self.labels

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


class GateInputError(Exception):
    """A template or assembly the gate cannot read."""


# --- templates and the resource schemas ---------------------------------------------------------------------


def load_template(path: Path) -> dict[str, Any]:
    """Reads a CloudFormation template in JSON or YAML (short forms such as !Ref included)."""
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return {"Resources": {}}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        from cfn_flip import load_yaml

        try:
            data = load_yaml(text)
        except Exception as error:  # any parser error means the same: not a template
            raise GateInputError(f"not a cloudformation template: {path} ({error})") from error
    if not isinstance(data, dict):
        raise GateInputError(f"not a cloudformation template: {path}")
    return json.loads(json.dumps(data))


@cache
def _schema_files() -> tuple[Path, dict[str, str]]:
    # Read cfn-lint's bundled schema files directly: importing cfnlint loads ~900 modules (seconds) for nothing.
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        raise GateInputError("cfn-lint is not installed: it ships the resource schemas the gate reads")
    schemas = Path(next(iter(spec.submodule_search_locations))) / "data" / "schemas"
    providers = json.loads((schemas / "providers" / "us-east-1.json").read_text(encoding="utf-8"))
    return schemas / "resources", providers


@cache
def replacement_paths(resource_type: str) -> tuple[str, ...]:
    """Property paths ("/properties/A/*/B") whose change replaces a resource of this type.

    From the CloudFormation registry schemas cfn-lint ships (createOnlyProperties), read offline, plus the few
    the schemas miss. An unknown type has none: the gate then sees only its additions and removals."""
    resources, providers = _schema_files()
    paths: list[str] = []
    if resource_type in providers:
        schema = json.loads((resources / f"{providers[resource_type]}.json").read_text(encoding="utf-8"))
        paths.extend(schema.get("createOnlyProperties", []))
    paths.extend(path for path in EXTRA_REPLACEMENT_PATHS.get(resource_type, ()) if path not in paths)
    return tuple(paths)


def _values_at(node: Any, parts: Sequence[str]) -> Iterator[Any]:
    if not parts:
        yield node
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        children: Iterable[Any] = node if isinstance(node, list) else node.values() if isinstance(node, dict) else ()
        for child in children:
            yield from _values_at(child, rest)
    elif isinstance(node, dict) and head in node:
        yield from _values_at(node[head], rest)


def _at(properties: Mapping[str, Any], path: str) -> list[Any]:
    parts = path.strip("/").split("/")
    if parts[0] != "properties":
        return []
    return list(_values_at(dict(properties), parts[1:]))


def _references(node: Any) -> set[str]:
    """Logical IDs a template value refers to (Ref, Fn::GetAtt, Fn::Sub)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) and value else str(value).split(".")[0]
                if isinstance(target, str):
                    found.add(target)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) and value else value
                if isinstance(text, str):
                    found |= {name.split(".")[0] for name in _sub_names(text)}
                if isinstance(value, list):
                    found |= _references(value[1:])
            else:
                found |= _references(value)
    return found


def _sub_names(text: str) -> Iterator[str]:
    start = text.find("${")
    while start != -1:
        end = text.find("}", start)
        if end == -1:
            return
        name = text[start + 2 : end]
        if not name.startswith("!"):
            yield name
        start = text.find("${", end)


# --- classification -----------------------------------------------------------------------------------------


def _resources(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    resources = template.get("Resources") or {}
    return {lid: res for lid, res in resources.items() if res.get("Type") not in IGNORED_TYPES}


def _is_stateful(resource: Mapping[str, Any]) -> bool:
    return resource.get("Type") in STATEFUL_TYPES or resource.get("DeletionPolicy") in RETAINING_POLICIES


def classify_stack(stack: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ResourceChange]:
    """Every resource change from the `old` (deployed) to the `new` template; unchanged resources are left out.

    A logical ID that changes is a removal plus an addition: CloudFormation deletes the old resource."""
    old_resources, new_resources = _resources(old), _resources(new)
    changes: dict[str, ResourceChange] = {}
    for lid, resource in old_resources.items():
        if lid not in new_resources:
            changes[lid] = ResourceChange(
                stack,
                lid,
                resource.get("Type", "?"),
                ChangeKind.REMOVED,
                _is_stateful(resource),
                retained=resource.get("DeletionPolicy") in RETAINING_POLICIES,
            )
    for lid, resource in new_resources.items():
        if lid not in old_resources:
            changes[lid] = ResourceChange(
                stack, lid, resource.get("Type", "?"), ChangeKind.ADDED, _is_stateful(resource)
            )

    both = [lid for lid in new_resources if lid in old_resources]
    replaced: dict[str, list[str]] = {}
    modified: dict[str, list[str]] = {}
    for lid in both:
        before, after = old_resources[lid], new_resources[lid]
        changed = _changed_attributes(before, after)
        if not changed:
            continue
        modified[lid] = changed
        reasons = _replacement_reasons(before, after)
        if reasons:
            replaced[lid] = reasons

    # A replaced resource gets a new physical ID: whatever names it in a replacement property is replaced too.
    grew = bool(replaced)
    while grew:
        grew = False
        for lid in both:
            if lid in replaced:
                continue
            resource_type = new_resources[lid].get("Type", "")
            props = new_resources[lid].get("Properties") or {}
            for path in replacement_paths(resource_type):
                hit = sorted(_references(_at(props, path)) & replaced.keys())
                if hit:
                    replaced[lid] = [f"{path.removeprefix('/properties/')} refers to replaced {hit[0]}"]
                    modified.setdefault(lid, [path.removeprefix("/properties/").split("/")[0]])
                    grew = True
                    break

    for lid, changed in modified.items():
        before = old_resources[lid]
        changes[lid] = ResourceChange(
            stack,
            lid,
            new_resources[lid].get("Type", "?"),
            ChangeKind.REPLACED if lid in replaced else ChangeKind.MODIFIED,
            _is_stateful(before) or _is_stateful(new_resources[lid]),
            changed=tuple(changed),
            reasons=tuple(replaced.get(lid, ())),
            retained=before.get("UpdateReplacePolicy") in RETAINING_POLICIES,
        )
    return sorted(changes.values(), key=lambda change: (not change.destructive, change.stack, change.logical_id))


def _changed_attributes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    changed: list[str] = []
    for attribute in COMPARED_ATTRIBUTES:
        if attribute == "Properties":
            old_props, new_props = before.get("Properties") or {}, after.get("Properties") or {}
            changed.extend(
                key for key in sorted(old_props.keys() | new_props.keys()) if old_props.get(key) != new_props.get(key)
            )
        elif before.get(attribute) != after.get(attribute):
            changed.append(attribute)
    return changed


def _replacement_reasons(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    if before.get("Type") != after.get("Type"):
        return [f"type {before.get('Type')} -> {after.get('Type')}"]
    old_props, new_props = before.get("Properties") or {}, after.get("Properties") or {}
    return [
        path.removeprefix("/properties/")
        for path in replacement_paths(str(after.get("Type")))
        if _at(old_props, path) != _at(new_props, path)
    ]


def decide(
    env: str, changes: Iterable[ResourceChange], labels: Iterable[str] = (), *, override_label: str = OVERRIDE_LABEL
) -> Verdict:
    # Blocking changes first, so that a shortened table still shows every one of them.
    ordered = sorted(changes, key=lambda change: (not change.destructive, change.stack, change.logical_id))
    return Verdict(env, tuple(ordered), override_label, frozenset(label.strip() for label in labels if label.strip()))


# --- cloud assemblies ---------------------------------------------------------------------------------------


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


# --- reports ------------------------------------------------------------------------------------------------


def _row(change: ResourceChange, *, overridden: bool) -> str:
    mark = ("⚠️" if overridden else "❌") if change.destructive else ("🗄️" if change.stateful else "")
    details = ", ".join(change.reasons) if change.reasons else ", ".join(change.changed)
    if change.kind is ChangeKind.REPLACED and change.reasons:
        details = f"replacement: {details}"
    if change.destructive and change.retained:
        kept = "orphaned, not deleted" if change.kind is ChangeKind.REMOVED else "old one kept, new one empty"
        details = f"{details} (retained: {kept})".strip()
    return (
        f"| {mark} | {change.stack} | `{change.logical_id}` | {change.resource_type} | {change.kind} | "
        f"{details.replace('|', '/')} |"
    )


def render_report(verdict: Verdict, cdk_diff: str | None = None, *, max_rows: int | None = MAX_TABLE_ROWS) -> str:
    """The markdown section of one environment: verdict, a table of resource changes, the cdk diff output."""
    if not verdict.passed:
        headline = (
            f"### ❌ `{verdict.env}`: blocked, {len(verdict.destructive)} stateful resource(s) would be replaced "
            f"or removed. Add the label `{verdict.override_label}` if this is intended."
        )
    elif verdict.overridden:
        headline = (
            f"### ⚠️ `{verdict.env}`: passes by override (`{verdict.override_label}`): "
            f"{len(verdict.destructive)} stateful resource(s) will be replaced or removed."
        )
    elif verdict.changes:
        headline = f"### ✅ `{verdict.env}`: passes, no stateful resource is replaced or removed."
    else:
        headline = f"### ✅ `{verdict.env}`: no resource changes."
    lines = [headline, ""]
    if verdict.changes:
        counts = Counter(change.kind for change in verdict.changes)
        summary = ", ".join(f"{counts[kind]} {kind}" for kind in ChangeKind if counts[kind])
        shown = verdict.changes if max_rows is None else verdict.changes[:max_rows]
        rows = [_row(change, overridden=verdict.overridden) for change in shown]
        if len(shown) < len(verdict.changes):
            rows.append(f"| | | ... and {len(verdict.changes) - len(shown)} more: see the job log | | | |")
        lines += [
            f"<details{' open' if len(verdict.changes) <= OPEN_TABLE_ROWS else ''}>"
            f"<summary>{len(verdict.changes)} resource change(s): {summary}</summary>",
            "",
            "| | stack | resource | type | change | details |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "❌ blocks, ⚠️ would block without the label, 🗄️ stateful (table, queue, bucket, parameter, or retained).",
            "</details>",
        ]
    if cdk_diff is not None:
        text = cdk_diff.strip() or "(no differences)"
        if len(text) > MAX_CDK_DIFF_CHARS:
            text = text[:MAX_CDK_DIFF_CHARS] + "\n... (truncated; the full output is in the job log)"
        lines += [
            "",
            f"<details><summary><code>cdk diff</code> for {verdict.env}</summary>",
            "",
            "```text",
            text.replace("```", "'''"),
            "```",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def render_comment(
    reports: Mapping[str, str],
    *,
    expected: Sequence[str] = (),
    head_sha: str | None = None,
    run_url: str | None = None,
) -> str:
    """One pull-request comment from every environment's report, under the marker the comment job looks for.

    An expected environment without a report is named: its job failed before the gate could decide."""
    lines = [COMMENT_MARKER, "## Diff gate", ""]
    if head_sha or run_url:
        commit = f"commit {head_sha}" if head_sha else "this commit"
        lines += [f"For {commit}" + (f", [workflow run]({run_url})." if run_url else "."), ""]
    order = [*expected, *sorted(set(reports) - set(expected))]
    for env in order:
        report = reports.get(env)
        if report is None:
            report = f"### ⚠️ `{env}`: no verdict: the job failed before the gate ran (see the workflow run)."
        lines += [report.strip(), ""]
    body = "\n".join(lines)
    if len(body) > MAX_COMMENT_CHARS:
        body = body[: MAX_COMMENT_CHARS - 200] + "\n\n... (truncated: see the job summaries of this run)\n"
    return body


# --- command line -------------------------------------------------------------------------------------------


def _split_labels(raw: str) -> list[str]:
    raw = raw.strip()
    if raw.startswith("["):
        return [str(label) for label in json.loads(raw)]
    return [label for label in raw.split(",") if label.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.diff_gate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    stacks_cmd = commands.add_parser("stacks", help="print the stack names of an assembly")
    stacks_cmd.add_argument("--assembly", type=Path, required=True)
    region_cmd = commands.add_parser("region", help="print the region the stacks of an assembly target")
    region_cmd.add_argument("--assembly", type=Path, required=True)
    region_cmd.add_argument("--expect", default=None, help="fail unless the stacks target this region (empty: any)")
    fetch_cmd = commands.add_parser("fetch", help="download the deployed templates")
    fetch_cmd.add_argument("--assembly", type=Path, required=True)
    fetch_cmd.add_argument("--out", type=Path, required=True)
    fetch_cmd.add_argument("--region", default=None)
    check_cmd = commands.add_parser("check", help="classify the changes and decide")
    check_cmd.add_argument("--env", required=True)
    check_cmd.add_argument("--assembly", type=Path, required=True)
    check_cmd.add_argument("--baseline", type=Path, required=True)
    check_cmd.add_argument("--labels", default="", help="pull-request labels: comma separated or a JSON list")
    check_cmd.add_argument("--override-label", default=OVERRIDE_LABEL)
    check_cmd.add_argument("--cdk-diff", type=Path, default=None, help="cdk diff output to show in the report")
    check_cmd.add_argument("--report", type=Path, default=None)
    comment_cmd = commands.add_parser("comment", help="join the reports (<env>.md) into one comment")
    comment_cmd.add_argument("--reports", type=Path, required=True)
    comment_cmd.add_argument("--out", type=Path, required=True)
    comment_cmd.add_argument("--envs", default="dev,staging,prod", help="environments that must have a report")
    comment_cmd.add_argument("--head-sha", default=None)
    comment_cmd.add_argument("--run-url", default=None)
    args = parser.parse_args(argv)

    try:
        if args.command == "stacks":
            for stack in assembly_stacks(args.assembly):
                print(stack.stack_name)
            return 0
        if args.command == "region":
            print(assembly_region(args.assembly, args.expect))
            return 0
        if args.command == "fetch":
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                fetched = fetch_deployed(args.assembly, args.out, default_region=args.region)
            except (BotoCoreError, ClientError) as error:
                print(f"diff gate: cannot read the deployed templates: {error}", file=sys.stderr)
                return 2
            for name, deployed in fetched.items():
                print(f"{name}: {'deployed' if deployed else 'not deployed yet'}")
            return 0
        if args.command == "check":
            verdict = check_assembly(
                args.env, args.assembly, args.baseline, _split_labels(args.labels), override_label=args.override_label
            )
            cdk_diff = args.cdk_diff.read_text(encoding="utf-8", errors="replace") if args.cdk_diff else None
            if args.report:
                args.report.parent.mkdir(parents=True, exist_ok=True)
                args.report.write_text(render_report(verdict, cdk_diff), encoding="utf-8")
            # The job log gets every row; the comment and the job summary get a table that fits.
            print(render_report(verdict, max_rows=None))
            return verdict.exit_code
        reports = {path.stem: path.read_text(encoding="utf-8") for path in sorted(args.reports.rglob("*.md"))}
        expected = [env.strip() for env in args.envs.split(",") if env.strip()]
        body = render_comment(reports, expected=expected, head_sha=args.head_sha, run_url=args.run_url)
        args.out.write_text(body, encoding="utf-8")
        return 0
    except (GateInputError, OSError, KeyError, json.JSONDecodeError) as error:
        print(f"diff gate: {error}", file=sys.stderr)
        return 2

