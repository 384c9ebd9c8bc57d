"""A Lambda function from the runtime's container image, with its own log group: the shape both Lambdas share."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct


def image_function(
    scope: Construct,
    *,
    code: lambda_.DockerImageCode,
    memory_mib: int,
    timeout: Duration,
    environment: dict[str, str],
    log_retention: logs.RetentionDays,
    tracing_enabled: bool,
) -> tuple[lambda_.DockerImageFunction, logs.LogGroup]:
    """Creates `Logs` and `Function` under `scope` (their construct IDs are part of the templates)."""
    log_group = logs.LogGroup(scope, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
    function = lambda_.DockerImageFunction(
        scope,
        "Function",
        code=code,
        memory_size=memory_mib,
        timeout=timeout,
        environment=environment,
        tracing=lambda_.Tracing.ACTIVE if tracing_enabled else lambda_.Tracing.DISABLED,
        log_group=log_group,
        architecture=lambda_.Architecture.X86_64,
    )
    return function, log_group
