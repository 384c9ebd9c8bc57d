"""The callback Lambda: delivers queued callback events (runtime.callback_handler.handler)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.components.image_function import queue_function

CALLBACK_HANDLER = "runtime.callback_handler.handler"


class CallbackDelivery(Construct):
    """One delivery per invocation (a POST waits up to 5 s; batching would make one slow endpoint delay others),
    partial batch failures reported, and reserved concurrency: endpoints that hang hold at most that many
    deliveries and never starve the account's other functions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.DockerImageCode,
        callback_queue: sqs.IQueue,
        timeout: Duration,
        reserved_concurrency: int,
        environment: dict[str, str],
        log_retention: logs.RetentionDays,
        tracing_enabled: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function, self.log_group = queue_function(
            self,
            code=code,
            queue=callback_queue,
            timeout=timeout,
            environment=environment,
            log_retention=log_retention,
            tracing_enabled=tracing_enabled,
            reserved_concurrency=reserved_concurrency,
        )
