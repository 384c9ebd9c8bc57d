"""The jobs table (DESIGN.md "DynamoDB item"): key, sparse GSIs, TTL, PITR, encryption."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

IDEMPOTENCY_INDEX = "by-idempotency-key"
PENDING_INDEX = "pending-by-age"
TTL_ATTRIBUTE = "expiresAt"


class JobStore(Construct):
    """The DynamoDB table holding jobs and idempotency heads."""

    def __init__(
        self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy, deletion_protection: bool
    ) -> None:
        super().__init__(scope, construct_id)
        # aws_dynamodb.Table, not TableV2: TableV2 becomes AWS::DynamoDB::GlobalTable, which the
        # local emulator's CloudFormation cannot create, and the local all-in-one deploys this stack.
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="jobId", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=deletion_protection,
            removal_policy=removal_policy,
        )
        self.table.add_global_secondary_index(
            index_name=IDEMPOTENCY_INDEX,
            partition_key=dynamodb.Attribute(name="idempotencyKey", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        # The republisher's sweep: only PENDING jobs carry pendingShard/pendingSince (sparse index).
        self.table.add_global_secondary_index(
            index_name=PENDING_INDEX,
            partition_key=dynamodb.Attribute(name="pendingShard", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="pendingSince", type=dynamodb.AttributeType.NUMBER),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=["traceId"],
        )

    # What each process does with the table (runtime/adapters/dynamodb_store.py); Table.grant also covers
    # the index ARNs, which Query needs.
    def grant_submit(self, grantee: iam.IGrantable) -> iam.Grant:
        """The API: conditional create, consistent get, retry/key-generation updates, key lookup, readiness."""
        return self.table.grant(
            grantee,
            "dynamodb:PutItem",
            "dynamodb:GetItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "dynamodb:DescribeTable",
        )

    def grant_process(self, grantee: iam.IGrantable) -> iam.Grant:
        """The worker: claim/lease/finish updates, republisher sweep (Query + BatchGetItem), readiness."""
        return self.table.grant(
            grantee,
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "dynamodb:DescribeTable",
        )

    def grant_finalize(self, grantee: iam.IGrantable) -> iam.Grant:
        """The DLQ handler: a conditional fail_final update, and a consistent get."""
        return self.table.grant(grantee, "dynamodb:GetItem", "dynamodb:UpdateItem")
