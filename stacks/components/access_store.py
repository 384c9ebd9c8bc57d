"""The access table: API keys (hashed) and per-tenant webhook secrets, shaped by runtime's access_schema."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from runtime.adapters.dynamodb import access_schema as schema
from stacks.components.tables import protected_table


class AccessStore(Construct):
    """Who may call the API and how callbacks are signed. Same protection as the jobs table: losing it locks
    every client out."""

    def __init__(
        self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy, deletion_protection: bool
    ) -> None:
        super().__init__(scope, construct_id)
        self.table = protected_table(
            self,
            partition_key=dynamodb.Attribute(name=schema.PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            removal_policy=removal_policy,
            deletion_protection=deletion_protection,
        )
        self.table.add_global_secondary_index(
            index_name=schema.TENANT_INDEX,
            partition_key=dynamodb.Attribute(
                name=schema.TENANT_INDEX_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            sort_key=dynamodb.Attribute(name=schema.TENANT_INDEX_SORT_KEY, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=list(schema.TENANT_INDEX_PROJECTED),
        )

    # GetItem on the table ARN only: Table.grant() would add <arn>/index/* as well, which a GetItem never needs.
    def grant_authenticate(self, grantee: iam.IGrantable) -> iam.Grant:
        """The API: one GetItem per uncached key id. It cannot list, write or revoke keys."""
        return self._grant_get_item(grantee)

    def grant_read_webhook_secrets(self, grantee: iam.IGrantable) -> iam.Grant:
        """The process that signs callbacks reads its tenant's secret with GetItem."""
        return self._grant_get_item(grantee)

    def _grant_get_item(self, grantee: iam.IGrantable) -> iam.Grant:
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["dynamodb:GetItem"], resource_arns=[self.table.table_arn]
        )
