"""A Lambda function from the runtime's container image, with its own log group: the shape both Lambdas share."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
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
    reserved_concurrency: int | None = None,
) -> tuple[lambda_.DockerImageFunction, logs.LogGroup]:
    """Creates `Logs` and `Function` under `scope` (their construct IDs are part of the templates).

    The role is ours, not the default one: instead of AWSLambdaBasicExecutionRole (log writes on every log group
    of the account) it may only create streams in and write to this function's own log group."""
    log_group = logs.LogGroup(scope, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
    # Named like the default role, but it sits one level higher in the tree, so its logical ID differs from the
    # default role's (the diff gate shows the roles replaced once; they hold no state).
    role = iam.Role(scope, "FunctionServiceRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    log_group.grant_write(role)
    function = lambda_.DockerImageFunction(
        scope,
        "Function",
        role=role,
        code=code,
        memory_size=memory_mib,
        timeout=timeout,
        environment=environment,
        tracing=lambda_.Tracing.ACTIVE if tracing_enabled else lambda_.Tracing.DISABLED,
        log_group=log_group,
        architecture=lambda_.Architecture.X86_64,
        reserved_concurrent_executions=reserved_concurrency,
    )
    return function, log_group


def queue_function(
    scope: Construct,
    *,
    code: lambda_.DockerImageCode,
    queue: sqs.IQueue,
    timeout: Duration,
    environment: dict[str, str],
    log_retention: logs.RetentionDays,
    tracing_enabled: bool,
    reserved_concurrency: int,
    max_concurrency: int | None = None,
) -> tuple[lambda_.DockerImageFunction, logs.LogGroup]:
    """An image function fed by `queue` one record per invocation, reporting partial batch failures (so a failed
    record comes back alone); `max_concurrency` caps the event source's concurrent invocations."""
    function, log_group = image_function(
        scope,
        code=code,
        memory_mib=512,
        timeout=timeout,
        environment=environment,
        log_retention=log_retention,
        tracing_enabled=tracing_enabled,
        reserved_concurrency=reserved_concurrency,
    )
    function.add_event_source(
        event_sources.SqsEventSource(
            queue, batch_size=1, report_batch_item_failures=True, max_concurrency=max_concurrency
        )
    )
    return function, log_group
