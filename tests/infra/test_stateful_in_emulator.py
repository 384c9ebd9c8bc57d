"""The stateful stack's template deploys into moto's CloudFormation, as the local all-in-one uses it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from stacks import stateful_template
from tests.infra.table_shapes import TABLE_KEY_SCHEMA, global_secondary_indexes

# moto's CloudFormation skips queue and bucket policies (SSL-only); the template tests check those.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")


@pytest.fixture(scope="module")
def deployed(isolated_moto_server: str) -> dict[str, Any]:
    template = stateful_template("local")
    cloudformation = boto3.client("cloudformation", endpoint_url=isolated_moto_server)
    stack_name = f"stateful-{uuid.uuid4().hex[:8]}"
    cloudformation.create_stack(StackName=stack_name, TemplateBody=json.dumps(template))
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName=stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {
        "status": stack["StackStatus"],
        "outputs": {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])},
    }


def test_stack_is_created_with_outputs(deployed: dict[str, Any]) -> None:
    assert deployed["status"] == "CREATE_COMPLETE"
    assert set(deployed["outputs"]) == {
        "TableName",
        "AccessTableName",
        "QueueUrl",
        "HighPriorityQueueUrl",
        "LowPriorityQueueUrl",
        "DeadLetterQueueUrl",
        "DocumentsBucketName",
        "SsmPath",
        "CallbackQueueUrl",
    }
    assert deployed["outputs"]["SsmPath"] == "/job-tickets/local"


def test_table_has_the_schemas_key_and_indexes(deployed: dict[str, Any], isolated_moto_server: str) -> None:
    dynamodb = boto3.client("dynamodb", endpoint_url=isolated_moto_server)
    table = dynamodb.describe_table(TableName=deployed["outputs"]["TableName"])["Table"]
    assert table["KeySchema"] == TABLE_KEY_SCHEMA
    indexes = [
        {"IndexName": index["IndexName"], "KeySchema": index["KeySchema"], "Projection": index["Projection"]}
        for index in table["GlobalSecondaryIndexes"]
    ]
    assert indexes == global_secondary_indexes()


@pytest.mark.parametrize("output", ["QueueUrl", "HighPriorityQueueUrl", "LowPriorityQueueUrl"])
def test_each_priority_queue_redrives_to_the_one_dead_letter_queue(
    deployed: dict[str, Any], isolated_moto_server: str, output: str
) -> None:
    sqs = boto3.client("sqs", endpoint_url=isolated_moto_server)
    outputs = deployed["outputs"]
    attributes = sqs.get_queue_attributes(QueueUrl=outputs[output], AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=outputs["DeadLetterQueueUrl"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}
    assert attributes["VisibilityTimeout"] == "30"


def test_parameters_are_readable_by_path_as_the_runtime_reads_them(
    deployed: dict[str, Any], isolated_moto_server: str
) -> None:
    ssm = boto3.client("ssm", endpoint_url=isolated_moto_server)
    pages = ssm.get_paginator("get_parameters_by_path").paginate(Path="/job-tickets/local/", WithDecryption=True)
    values = {p["Name"].rsplit("/", 1)[1]: p["Value"] for page in pages for p in page["Parameters"]}
    outputs = deployed["outputs"]
    assert values == {
        "environment": "local",
        "table-name": outputs["TableName"],
        "access-table-name": outputs["AccessTableName"],
        "queue-url": outputs["QueueUrl"],
        "high-priority-queue-url": outputs["HighPriorityQueueUrl"],
        "low-priority-queue-url": outputs["LowPriorityQueueUrl"],
        "dead-letter-queue-url": outputs["DeadLetterQueueUrl"],
        "documents-bucket": outputs["DocumentsBucketName"],
        "visibility-timeout-s": "30",
        "max-attempts": "3",
        "worker-concurrency": "8",
        "retention-days": "1",
        "republish-after-s": "60",
        "republish-interval-s": "15",
        "callback-queue-url": outputs["CallbackQueueUrl"],
        "callback-allow-loopback": "true",
    }


def test_documents_bucket_exists(deployed: dict[str, Any], isolated_moto_server: str) -> None:
    s3 = boto3.client("s3", endpoint_url=isolated_moto_server)
    bucket = deployed["outputs"]["DocumentsBucketName"]
    # moto's CloudFormation ignores VersioningConfiguration; the template test checks that property.
    s3.put_object(Bucket=bucket, Key="probe.txt", Body=b"x")
    assert s3.get_object(Bucket=bucket, Key="probe.txt")["Body"].read() == b"x"
