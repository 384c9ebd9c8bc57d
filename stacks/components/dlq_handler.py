"""The DLQ Lambda: redrives dead-lettered jobs with attempts left, marks the others FAILED_FINAL
(runtime.dlq_handler.handler)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.components.image_function import queue_function

DLQ_HANDLER = "runtime.dlq_handler.handler"


class DlqHandler(Construct):
    """One record per invocation, partial batch failures reported: a failed record stays on the DLQ. At most
    `concurrency` invocations at once: reserved for the function, and the event source's maximum concurrency (so
    SQS polling backs off instead of being throttled by Lambda)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.DockerImageCode,
        dead_letter_queue: sqs.IQueue,
        timeout: Duration,
        environment: dict[str, str],
        log_retention: logs.RetentionDays,
        tracing_enabled: bool,
        concurrency: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function, self.log_group = queue_function(
            self,
            code=code,
            queue=dead_letter_queue,
            timeout=timeout,
            environment=environment,
            log_retention=log_retention,
            tracing_enabled=tracing_enabled,
            reserved_concurrency=concurrency,
            max_concurrency=concurrency,
        )
