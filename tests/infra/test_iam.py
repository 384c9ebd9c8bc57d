"""Issue 3, point 5: each role's statements name only the actions and resources its process needs."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from stacks.config import get_config
from tests.infra.conftest import EnvTemplates, synthesized

XRAY_DAEMON = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
}
XRAY_LAMBDA = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
SSM = {"ssm:GetParametersByPath"}
API_TABLE = {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:DescribeTable"}
API_QUEUE = {"sqs:SendMessage", "sqs:GetQueueAttributes"}
# A Lambda function's own log group, instead of AWSLambdaBasicExecutionRole's log writes on every group.
OWN_LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
# Authentication only reads a key by id: the API can neither list, create nor revoke keys.
API_ACCESS_TABLE = {"dynamodb:GetItem"}
WORKER_QUEUE = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:SendMessage",
    "sqs:GetQueueAttributes",
}
# One queue per priority; normal's keeps the JobsQueue ID from before priorities.
HIGH_QUEUE, NORMAL_QUEUE, LOW_QUEUE = "QueuesHighPriorityQueue", "QueuesJobsQueue", "QueuesLowPriorityQueue"
# Whoever ends a job (worker, API cancel, DLQ Lambda) only sends to the callback queue.
CALLBACK_QUEUE = "CallbacksQueue"
ENQUEUE_CALLBACK = {"sqs:SendMessage"}

# The API runs the same code as a Fargate task or a Lambda function: the same grants either way.
API_GRANTS = {
    "JobStoreTable": API_TABLE,
    "AccessStoreTable": API_ACCESS_TABLE,
    HIGH_QUEUE: API_QUEUE,
    NORMAL_QUEUE: API_QUEUE,
    LOW_QUEUE: API_QUEUE,
    ":parameter/job-tickets/": SSM,
    # Signing download links of results stored apart (tenants/<tenant>/results/): reading those objects only.
    "DocumentsBucket": {"s3:GetObject"},
    CALLBACK_QUEUE: ENQUEUE_CALLBACK,
}

# role logical-ID prefix -> {action: resource the action must be scoped to ("*" only for X-Ray)}
EXPECTED: dict[str, dict[str, set[str]]] = {
    "WorkerTaskTaskRole": {
        "*": XRAY_DAEMON,
        HIGH_QUEUE: WORKER_QUEUE,
        # GetQueueUrl: QueueProcessingFargateService's own grant on the queue it is built on.
        NORMAL_QUEUE: WORKER_QUEUE | {"sqs:GetQueueUrl"},
        LOW_QUEUE: WORKER_QUEUE,
        "JobStoreTable": {
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "dynamodb:DescribeTable",
        },
        "DocumentsBucket": {"s3:GetObject", "s3:PutObject"},
        ":parameter/job-tickets/": SSM,
        ":task/": {"ecs:UpdateTaskProtection"},
        CALLBACK_QUEUE: ENQUEUE_CALLBACK,
    },
    "ApiTaskTaskRole": {
        "*": XRAY_DAEMON,
        **API_GRANTS,
    },
    "ApiFunctionServiceRole": {
        "*": XRAY_LAMBDA,
        "ApiLogs": OWN_LOGS,
        **API_GRANTS,
    },
    "DlqHandlerFunctionServiceRole": {
        "*": XRAY_LAMBDA,
        "DlqHandlerLogs": OWN_LOGS,
        "QueuesDeadLetterQueue": {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
        },
        "JobStoreTable": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        ":parameter/job-tickets/": SSM,
        CALLBACK_QUEUE: ENQUEUE_CALLBACK,
        # Redrives: a fresh message for a dead-lettered job with attempts left, on its priority's queue. Send only.
        HIGH_QUEUE: {"sqs:SendMessage"},
        NORMAL_QUEUE: {"sqs:SendMessage"},
        LOW_QUEUE: {"sqs:SendMessage"},
    },
    # Delivers callbacks: reads the job and records the attempt, reads the tenant's signing secret, consumes the
    # callback queue and sends retries to it. No other queue, no index, no bucket.
    "CallbackDeliveryFunctionServiceRole": {
        "*": XRAY_LAMBDA,
        "CallbackDeliveryLogs": OWN_LOGS,
        CALLBACK_QUEUE: {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
            "sqs:SendMessage",
        },
        "JobStoreTable": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        "AccessStoreTable": {"dynamodb:GetItem"},
        ":parameter/job-tickets/": SSM,
    },
}


def _statements_by_role(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_role: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        for role in resource["Properties"]["Roles"]:
            by_role[role["Ref"]].extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return by_role


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _granted(statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    """action -> the resources it is allowed on (as JSON text, to look for the resource they name)."""
    granted: dict[str, set[str]] = defaultdict(set)
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in _as_list(statement["Action"]):
            assert "*" not in action, action
            for resource in _as_list(statement["Resource"]):
                granted[action].add(resource if isinstance(resource, str) else str(resource))
    return granted


@pytest.mark.parametrize("env_name", ["dev", "prod"])  # Lambda API and Fargate API
def test_roles_are_least_privilege(env_name: str) -> None:
    env: EnvTemplates = synthesized(env_name)
    assert env.service is not None
    by_role = _statements_by_role(env.service)
    checked = 0
    for role_id, statements in by_role.items():
        prefix = next((p for p in EXPECTED if role_id.startswith(p)), None)
        if prefix is None:
            continue
        checked += 1
        expected = EXPECTED[prefix]
        granted = _granted(statements)
        assert set(granted) == set().union(*expected.values()), role_id
        for action, resources in granted.items():
            # An action may be granted on several resources (GetItem on both tables): each listed one is
            # covered, and nothing else is.
            markers = [marker for marker, actions in expected.items() if action in actions]
            if markers == ["*"]:
                assert resources == {"*"}, (role_id, action, resources)
                continue
            assert "*" not in resources, (role_id, action)
            for marker in markers:
                assert any(marker in r for r in resources), (role_id, action, marker)
            for resource in resources:
                assert any(marker in resource for marker in markers), (role_id, action, resource)
            if ":parameter/job-tickets/" in markers:
                assert all(f"/job-tickets/{env_name}" in r for r in resources)
    assert checked == 4  # worker, DLQ handler, callback delivery, and the API of this mode


def test_no_role_has_a_managed_policy(deployed_env: EnvTemplates) -> None:
    # Not even AWSLambdaBasicExecutionRole: it allows log writes to every log group of the account.
    assert deployed_env.service is not None
    for logical_id, resource in deployed_env.resources(deployed_env.service, "AWS::IAM::Role").items():
        assert not resource["Properties"].get("ManagedPolicyArns"), logical_id


def test_no_secret_like_values_in_templates(any_env: EnvTemplates) -> None:
    text = str(any_env.stateful) + str(any_env.service)
    for marker in ("AKIA", "aws_secret_access_key", "password", "BEGIN PRIVATE KEY"):
        assert marker.lower() not in text.lower()


def test_the_worker_reads_and_writes_documents_only_under_the_tenants_prefix() -> None:
    env: EnvTemplates = synthesized("prod")
    assert env.service is not None
    worker = next(
        statements
        for role, statements in _statements_by_role(env.service).items()
        if role.startswith("WorkerTaskTaskRole")
    )
    resources = _granted(worker)["s3:GetObject"] | _granted(worker)["s3:PutObject"]
    assert resources and all("/tenants/*" in resource for resource in resources), resources


@pytest.mark.parametrize("env_name", ["dev", "prod"])  # Lambda API and Fargate API
def test_the_api_reads_only_the_stored_apart_results(env_name: str) -> None:
    env: EnvTemplates = synthesized(env_name)
    assert env.service is not None
    api = next(
        statements
        for role, statements in _statements_by_role(env.service).items()
        if role.startswith(("ApiTaskTaskRole", "ApiFunctionServiceRole"))
    )
    granted = _granted(api)
    assert not {action for action in granted if action.startswith("s3:")} - {"s3:GetObject"}
    assert granted["s3:GetObject"] and all("/tenants/*/results/*" in r for r in granted["s3:GetObject"])


def test_the_callback_lambda_reads_and_updates_the_jobs_table_itself_not_its_indexes() -> None:
    env: EnvTemplates = synthesized("dev")
    assert env.service is not None
    delivery = next(
        statements
        for role, statements in _statements_by_role(env.service).items()
        if role.startswith("CallbackDeliveryFunctionServiceRole")
    )
    granted = _granted(delivery)
    for action in ("dynamodb:GetItem", "dynamodb:UpdateItem"):
        assert not any("/index/" in resource for resource in granted[action]), granted[action]


def test_the_callback_lambda_has_reserved_concurrency_and_one_message_per_invocation() -> None:
    env: EnvTemplates = synthesized("dev")
    assert env.service is not None
    functions = env.resources(env.service, "AWS::Lambda::Function")
    delivery = next(resource for logical_id, resource in functions.items() if logical_id.startswith("CallbackDelivery"))
    assert delivery["Properties"]["ReservedConcurrentExecutions"] == get_config("dev").callbacks.reserved_concurrency
    assert delivery["Properties"]["ImageConfig"]["Command"] == ["runtime.callback_handler.handler"]
    mappings = [
        resource
        for logical_id, resource in env.resources(env.service, "AWS::Lambda::EventSourceMapping").items()
        if logical_id.startswith("CallbackDelivery")
    ]
    assert len(mappings) == 1 and mappings[0]["Properties"]["BatchSize"] == 1
    assert mappings[0]["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
