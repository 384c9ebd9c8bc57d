"""Every resource change between a deployed and a new template, and whether it destroys a stateful resource."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.diff_gate.templates import at_path, references, replacement_paths
from tools.diff_gate.verdict import ChangeKind, ResourceChange

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

# Resource attributes whose change alters the deployed resource; Metadata and DependsOn do not.
COMPARED_ATTRIBUTES = ("Type", "Properties", "DeletionPolicy", "UpdateReplacePolicy", "Condition", "UpdatePolicy")
IGNORED_TYPES = frozenset({"AWS::CDK::Metadata"})


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
                hit = sorted(references(at_path(props, path)) & replaced.keys())
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
        if at_path(old_props, path) != at_path(new_props, path)
    ]
