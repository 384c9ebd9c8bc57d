"""Test helpers: uniquely named jobs and access tables (from the synthesized stateful template) and queues on
moto."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from typing import Any

import boto3

from runtime.aws_clients import build_client, client_config
from runtime.local.provision import LOCAL_ENV, deploy_stack, stateful_template
from tests.conftest import free_port


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def raw_client(service: str, endpoint: str) -> Any:
    return boto3.session.Session(region_name="us-east-1").client(service, endpoint_url=endpoint)


def counted_client(service: str, endpoint: str) -> Any:
    """A client built the way the runtime builds them (timeouts, retries, request counting)."""
    return build_client(service, region="us-east-1", endpoint_url=endpoint)


def table_template(construct_id: str, table_name: str, *, env_name: str = LOCAL_ENV) -> dict[str, Any]:
    """The table of construct `construct_id` (JobStore, AccessStore) exactly as the synthesized stateful stack
    of `env_name` declares it (by default the local all-in-one's template; cached by source hash), alone in a
    template of its own and named `table_name`."""
    resources = stateful_template(env_name)["Resources"]
    tables = {
        logical_id: resource
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::DynamoDB::Table" and logical_id.startswith(f"{construct_id}Table")
    }
    ((logical_id, table),) = tables.items()
    table = copy.deepcopy(table)
    table["Properties"]["TableName"] = table_name
    return {"Resources": {logical_id: table}}


def jobs_table_template(table_name: str, *, env_name: str = LOCAL_ENV) -> dict[str, Any]:
    return table_template("JobStore", table_name, env_name=env_name)


def create_jobs_table(endpoint: str, name: str, *, env_name: str = LOCAL_ENV) -> None:
    """Deploys the jobs table of the stateful template into moto's CloudFormation, as the local all-in-one does
    (an AWS environment's table has the stream the status events are read from)."""
    deploy_stack(jobs_table_template(name, env_name=env_name), endpoint_url=endpoint, stack_name=name)


def create_access_table(endpoint: str, name: str) -> None:
    """The access table (API keys, webhook secrets) of the stateful template, deployed the same way."""
    deploy_stack(table_template("AccessStore", name), endpoint_url=endpoint, stack_name=name)


@dataclass(frozen=True)
class AwsResources:
    endpoint: str
    table_name: str
    queue_url: str
    dead_letter_queue_url: str
    bucket: str
    access_table_name: str


def create_resources(
    endpoint: str, prefix: str, *, visibility_timeout_s: int = 30, max_receive_count: int = 3
) -> AwsResources:
    sqs = raw_client("sqs", endpoint)
    s3 = raw_client("s3", endpoint)
    table = unique(f"{prefix}-jobs")
    create_jobs_table(endpoint, table)
    dlq_url = sqs.create_queue(QueueName=unique(f"{prefix}-dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)})
    queue_url = sqs.create_queue(
        QueueName=unique(f"{prefix}-queue"),
        Attributes={"VisibilityTimeout": str(visibility_timeout_s), "RedrivePolicy": redrive},
    )["QueueUrl"]
    bucket = unique(f"{prefix}-docs")
    s3.create_bucket(Bucket=bucket)
    access_table = unique(f"{prefix}-access")
    create_access_table(endpoint, access_table)
    return AwsResources(endpoint, table, queue_url, dlq_url, bucket, access_table)


def scan_all(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def queue_depth(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def dead_client(service: str) -> Any:
    """A client of an endpoint where nothing listens; one attempt, so tests do not wait out retry backoff."""
    return build_client(
        service,
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=client_config(max_attempts=1),
    )
