"""Test helpers: a uniquely named jobs table (same key schema and GSIs as the design) and queues on moto."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import boto3

from runtime.aws_clients import build_client, client_config
from tests.conftest import free_port


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def raw_client(service: str, endpoint: str) -> Any:
    return boto3.session.Session(region_name="us-east-1").client(service, endpoint_url=endpoint)


def counted_client(service: str, endpoint: str) -> Any:
    """A client built the way the runtime builds them (timeouts, retries, request counting)."""
    return build_client(service, region="us-east-1", endpoint_url=endpoint)


def create_jobs_table(dynamodb: Any, name: str) -> None:
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "jobId", "AttributeType": "S"},
            {"AttributeName": "idempotencyKey", "AttributeType": "S"},
            {"AttributeName": "pendingShard", "AttributeType": "S"},
            {"AttributeName": "pendingSince", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "jobId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-idempotency-key",
                "KeySchema": [{"AttributeName": "idempotencyKey", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "pending-by-age",
                "KeySchema": [
                    {"AttributeName": "pendingShard", "KeyType": "HASH"},
                    {"AttributeName": "pendingSince", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["traceId"]},
            },
        ],
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"}
    )


@dataclass(frozen=True)
class AwsResources:
    endpoint: str
    table_name: str
    queue_url: str
    dead_letter_queue_url: str
    bucket: str


def create_resources(
    endpoint: str, prefix: str, *, visibility_timeout_s: int = 30, max_receive_count: int = 3
) -> AwsResources:
    dynamodb = raw_client("dynamodb", endpoint)
    sqs = raw_client("sqs", endpoint)
    s3 = raw_client("s3", endpoint)
    table = unique(f"{prefix}-jobs")
    create_jobs_table(dynamodb, table)
    dlq_url = sqs.create_queue(QueueName=unique(f"{prefix}-dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)})
    queue_url = sqs.create_queue(
        QueueName=unique(f"{prefix}-queue"),
        Attributes={"VisibilityTimeout": str(visibility_timeout_s), "RedrivePolicy": redrive},
    )["QueueUrl"]
    bucket = unique(f"{prefix}-docs")
    s3.create_bucket(Bucket=bucket)
    return AwsResources(endpoint, table, queue_url, dlq_url, bucket)


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
    return build_client(service, region="us-east-1", endpoint_url=f"http://127.0.0.1:{free_port()}",
                        config=client_config(max_attempts=1))
