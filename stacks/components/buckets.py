"""The settings every S3 bucket of the system shares: no public access, SSE-S3, SSL only, owner-enforced
objects (no ACLs). SSE-S3 because ALB access logs and S3 server access logs cannot be written under SSE-KMS."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct


def private_bucket(
    scope: Construct,
    construct_id: str,
    *,
    lifecycle_rules: Sequence[s3.LifecycleRule],
    removal_policy: RemovalPolicy,
    versioned: bool = False,
    server_access_logs_bucket: s3.IBucket | None = None,
    server_access_logs_prefix: str | None = None,
) -> s3.Bucket:
    # No auto_delete_objects: it adds an asset Lambda custom resource, which the local emulator's
    # CloudFormation cannot deploy. A non-empty bucket in dev must be emptied before stack deletion.
    return s3.Bucket(
        scope,
        construct_id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        versioned=versioned,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        server_access_logs_bucket=server_access_logs_bucket,
        server_access_logs_prefix=server_access_logs_prefix,
        lifecycle_rules=list(lifecycle_rules),
        removal_policy=removal_policy,
    )


def access_logs_bucket(
    scope: Construct, construct_id: str, *, expire_after_days: int, removal_policy: RemovalPolicy
) -> s3.Bucket:
    """A private bucket that access logs (ALB, S3 server) go to, expiring them after `expire_after_days`."""
    return private_bucket(
        scope,
        construct_id,
        lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(expire_after_days))],
        removal_policy=removal_policy,
    )
