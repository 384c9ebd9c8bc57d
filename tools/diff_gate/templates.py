"""CloudFormation templates and the resource schemas: which property paths force a replacement, what refers to what."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from tools.diff_gate.verdict import GateInputError

# The registry schemas cfn-lint ships miss a few properties that the legacy resource specification (and the
# CloudFormation user guide) mark "Update requires: Replacement"; the CDK CLI merges the same ones.
EXTRA_REPLACEMENT_PATHS: Mapping[str, tuple[str, ...]] = {
    "AWS::DynamoDB::Table": ("/properties/KeySchema", "/properties/LocalSecondaryIndexes"),
    "AWS::S3::Bucket": ("/properties/ObjectLockEnabled",),
}


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


def at_path(properties: Mapping[str, Any], path: str) -> list[Any]:
    parts = path.strip("/").split("/")
    if parts[0] != "properties":
        return []
    return list(_values_at(dict(properties), parts[1:]))


def references(node: Any) -> set[str]:
    """Logical IDs a template value refers to (Ref, Fn::GetAtt, Fn::Sub)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
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
                    found |= references(value[1:])
            else:
                found |= references(value)
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
