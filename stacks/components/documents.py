"""The documents bucket (job inputs and outputs) and the bucket its access logs go to."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from runtime.job_types.confinement import TENANTS_PREFIX


class Documents(Construct):
    """Private, encrypted, SSL-only, versioned bucket with lifecycle rules and server access logs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        noncurrent_version_days: int,
        access_log_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        # No auto_delete_objects: it adds an asset Lambda custom resource, which the local emulator's
        # CloudFormation cannot deploy. A non-empty bucket in dev must be emptied before stack deletion.
        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(access_log_days))],
            removal_policy=removal_policy,
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            # Reports are overwritten in place; versions make an overwrite or a delete recoverable.
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="documents/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(noncurrent_version_days),
                    expired_object_delete_marker=True,
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(1)
                ),
            ],
            removal_policy=removal_policy,
        )

    def grant_read_write_objects(self, grantee: iam.IGrantable) -> iam.Grant:
        """The worker's job types read sources and write results, only under the tenants' prefix (the worker also
        confines each job to its own tenant's prefix); nothing lists, deletes or reads ACLs."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:GetObject", "s3:PutObject"],
            resource_arns=[self.bucket.arn_for_objects(f"{TENANTS_PREFIX}*")],
        )
