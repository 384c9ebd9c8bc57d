"""Issue 9, point 10: the IAM policies the README's one-time setup installs: the pull-request diff role reads
deployed templates and nothing else, and CloudFormation deploys with a scoped policy, not AdministratorAccess."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
IAM_DIR = REPO_ROOT / ".github" / "iam"
DIFF_ROLE_POLICY = IAM_DIR / "diff-role-policy.json"
EXECUTION_POLICY = IAM_DIR / "cdk-execution-policy.json"
README = REPO_ROOT / "README.md"

# CloudFormation resource namespace -> IAM service prefix, where they differ.
IAM_PREFIX = {
    "ApiGatewayV2": "apigateway",
    "ApplicationAutoScaling": "application-autoscaling",
    "CertificateManager": "acm",
    "ElasticLoadBalancingV2": "elasticloadbalancing",
    "CloudWatch": "cloudwatch",
}


def _statements(path: Path) -> list[dict[str, Any]]:
    document = json.loads(path.read_text())
    assert document["Version"] == "2012-10-17"
    return list(document["Statement"])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _allowed_actions(path: Path) -> set[str]:
    return {a for s in _statements(path) if s["Effect"] == "Allow" for a in _as_list(s["Action"])}


def test_the_diff_role_may_read_deployed_templates_and_nothing_else() -> None:
    [statement] = _statements(DIFF_ROLE_POLICY)
    assert statement["Effect"] == "Allow"
    assert set(_as_list(statement["Action"])) == {"cloudformation:GetTemplate", "cloudformation:DescribeStacks"}
    # Only this app's stacks; no sts:AssumeRole (the CDK lookup role reads SSM, VPCs, ...), no data service.
    assert _as_list(statement["Resource"]) == ["arn:aws:cloudformation:*:*:stack/JobTickets-*/*"]
    assert "Condition" not in statement and "NotAction" not in statement


def test_the_diff_gate_runs_cdk_diff_offline_against_the_fetched_templates() -> None:
    gate = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "diff-gate.yml").read_text())
    [step] = [s for s in gate["jobs"]["diff"]["steps"] if s.get("name") == "cdk diff against the deployed stacks"]
    assert 'npx cdk diff --app "$ASSEMBLY" --template "$baseline"' in step["run"]
    text = (REPO_ROOT / ".github" / "workflows" / "diff-gate.yml").read_text()
    assert "lookup-role" not in text and "AssumeRole" not in text


def test_readme_sets_up_the_diff_role_from_the_policy_file_without_the_lookup_role() -> None:
    readme = README.read_text()
    assert "--policy-document file://.github/iam/diff-role-policy.json" in readme
    assert "lookup-role" not in readme


def test_readme_bootstraps_with_the_scoped_execution_policy() -> None:
    readme = README.read_text()
    assert "--policy-document file://.github/iam/cdk-execution-policy.json" in readme
    bootstraps = re.findall(r"npx cdk bootstrap[^\n]*", readme.replace("\\\n", " "))
    assert bootstraps
    for command in bootstraps:
        assert "--cloudformation-execution-policies arn:aws:iam::<ACCOUNT_ID>:policy/job-tickets-cfn-execution" in (
            command
        )
    assert "AdministratorAccess" not in readme.replace("instead of\n  `AdministratorAccess`", "")


def test_the_execution_policy_never_grants_everything_nor_iam_beyond_this_apps_roles() -> None:
    for statement in _statements(EXECUTION_POLICY):
        actions = _as_list(statement["Action"])
        assert "*" not in actions and "iam:*" not in actions, statement["Sid"]
        if statement["Effect"] == "Allow" and any(a.startswith("iam:") for a in actions):
            resources = _as_list(statement["Resource"])
            assert all(r.startswith("arn:aws:iam::*:role/") for r in resources), statement["Sid"]
            assert "*" not in resources
    denied = {a for s in _statements(EXECUTION_POLICY) if s["Effect"] == "Deny" for a in _as_list(s["Action"])}
    assert {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "sqs:ReceiveMessage"} <= denied
    # A managed policy document is limited to 6,144 characters without whitespace.
    assert len(re.sub(r"\s", "", EXECUTION_POLICY.read_text())) <= 6144


def _service_prefixes(template: dict[str, Any]) -> set[str]:
    prefixes = set()
    for resource in template["Resources"].values():
        kind = resource["Type"]
        if kind == "AWS::CDK::Metadata":
            continue
        if kind.startswith("Custom::"):
            prefixes.add("lambda")
            continue
        namespace = kind.split("::")[1]
        prefixes.add(IAM_PREFIX.get(namespace, namespace.lower()))
    return prefixes


@pytest.mark.parametrize("env_name", ["dev", "prod"])  # Lambda API and Fargate API with ALB, WAF, DNS
def test_the_execution_policy_covers_every_service_the_templates_deploy(env_name: str) -> None:
    from tests.infra.conftest import synthesized

    env = synthesized(env_name)
    assert env.service is not None
    needed = _service_prefixes(env.stateful) | _service_prefixes(env.service)
    allowed = _allowed_actions(EXECUTION_POLICY)
    allowed_services = {a.split(":")[0] for a in allowed}
    missing = needed - allowed_services
    assert not missing, f"add these services to {EXECUTION_POLICY.relative_to(REPO_ROOT)}: {sorted(missing)}"
    assert {"iam:CreateRole", "iam:PutRolePolicy", "iam:PassRole"} <= allowed
