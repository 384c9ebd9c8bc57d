"""The documents bucket (job inputs and outputs) and the bucket its access logs go to."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from runtime.domain.results import RESULTS_FOLDER
from runtime.job_types.confinement import TENANTS_PREFIX
from stacks.components.buckets import access_logs_bucket, private_bucket


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
        self.access_logs_bucket = access_logs_bucket(
            self, "AccessLogsBucket", expire_after_days=access_log_days, removal_policy=removal_policy
        )
        self.bucket = private_bucket(
            self,
            "Bucket",
            # Reports are overwritten in place; versions make an overwrite or a delete recoverable.
            versioned=True,
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

    def grant_read_results(self, grantee: iam.IGrantable) -> iam.Grant:
        """The API signs download links of results stored apart (tenants/<tenant>/results/<jobId>.json): a link
        works only as far as its signer may read, so it may read those objects and nothing else."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:GetObject"],
            resource_arns=[self.bucket.arn_for_objects(results_objects_pattern())],
        )


def results_objects_pattern() -> str:
    """The key pattern of every tenant's stored-apart results (runtime/domain/results.py)."""
    return f"{TENANTS_PREFIX}*/{RESULTS_FOLDER}/*"
