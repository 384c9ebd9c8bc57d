"""The jobs table (DESIGN.md "DynamoDB item"): key, sparse GSIs, TTL, PITR, encryption."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from runtime.adapters.dynamodb.schema import (
    INDEXES,
    STREAM_VIEW,
    TABLE_KEY,
    TTL_ATTRIBUTE,
    KeyAttribute,
    KeyType,
    Projection,
)
from stacks.components.tables import protected_table

_KEY_TYPES = {KeyType.STRING: dynamodb.AttributeType.STRING, KeyType.NUMBER: dynamodb.AttributeType.NUMBER}
_PROJECTIONS = {
    Projection.KEYS_ONLY: dynamodb.ProjectionType.KEYS_ONLY,
    Projection.INCLUDE: dynamodb.ProjectionType.INCLUDE,
    Projection.ALL: dynamodb.ProjectionType.ALL,
}


def _attribute(key: KeyAttribute) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_KEY_TYPES[key.type])


class JobStore(Construct):
    """The DynamoDB table holding jobs and idempotency heads; with `stream`, its stream carries the records the
    status events are made of (schema.py, "Status events")."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: RemovalPolicy,
        deletion_protection: bool,
        stream: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.table = protected_table(
            self,
            partition_key=_attribute(TABLE_KEY),
            removal_policy=removal_policy,
            deletion_protection=deletion_protection,
            time_to_live_attribute=TTL_ATTRIBUTE,
            stream=dynamodb.StreamViewType(STREAM_VIEW) if stream else None,
        )
        # The table's indexes as runtime/adapters/dynamodb/schema.py defines them (the store queries the same).
        for index in INDEXES:
            self.table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attribute(index.partition_key),
                sort_key=_attribute(index.sort_key) if index.sort_key is not None else None,
                projection_type=_PROJECTIONS[index.projection],
                non_key_attributes=list(index.non_key_attributes) or None,
            )

    # What each process does with the table (runtime/adapters/dynamodb/store.py); Table.grant also covers
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
        """The worker: the lazy claim's read (BatchGetItem), claim/lease/finish updates, republisher sweep (Query +
        BatchGetItem), readiness."""
        return self.table.grant(
            grantee,
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "dynamodb:DescribeTable",
        )

    def grant_deliver_callbacks(self, grantee: iam.IGrantable) -> iam.Grant:
        """The callback Lambda: a consistent get of the job, a conditional update of its callback state. GetItem and
        UpdateItem on the table ARN only (Table.grant would add the index ARNs, which neither call uses)."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["dynamodb:GetItem", "dynamodb:UpdateItem"], resource_arns=[self.table.table_arn]
        )

    def grant_finalize(self, grantee: iam.IGrantable) -> iam.Grant:
        """The DLQ handler: a conditional fail_final update, and a consistent get."""
        return self.table.grant(grantee, "dynamodb:GetItem", "dynamodb:UpdateItem")
