"""The settings every DynamoDB table of the system shares: on-demand, PITR, AWS-managed encryption and the
environment's protection against deletion."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct


def protected_table(
    scope: Construct,
    *,
    partition_key: dynamodb.Attribute,
    removal_policy: RemovalPolicy,
    deletion_protection: bool,
    time_to_live_attribute: str | None = None,
    stream: dynamodb.StreamViewType | None = None,
) -> dynamodb.Table:
    """The construct `Table` in `scope`. aws_dynamodb.Table, not TableV2: TableV2 becomes
    AWS::DynamoDB::GlobalTable, which the local emulator's CloudFormation cannot create, and the local
    all-in-one deploys the stateful stack."""
    return dynamodb.Table(
        scope,
        "Table",
        partition_key=partition_key,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        time_to_live_attribute=time_to_live_attribute,
        stream=stream,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        deletion_protection=deletion_protection,
        removal_policy=removal_policy,
    )
