"""The stateful stack: jobs table, access table, queues (jobs, callbacks), documents bucket, the runtime's SSM
parameters and the status events' bus."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, DefaultStackSynthesizer, Duration, RemovalPolicy, Stack
from constructs import Construct

from runtime.domain.job import Priority
from stacks.components.access_store import AccessStore
from stacks.components.callback_queues import CallbackQueues
from stacks.components.documents import Documents
from stacks.components.job_store import JobStore
from stacks.components.parameters import Parameters
from stacks.components.queues import Queues
from stacks.components.status_events import StatusEventBus
from stacks.config import EnvironmentConfig


def _stateful_synthesizer() -> DefaultStackSynthesizer:
    # This stack has no assets, so it does not depend on the bootstrap version; without the rule the
    # same template deploys unchanged into the local emulator's CloudFormation (defined once).
    return DefaultStackSynthesizer(generate_bootstrap_version_rule=False)


class StatefulStack(Stack):
    """Data that outlives deployments: retained and termination-protected where config.protect_data."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs: Any) -> None:
        kwargs.setdefault("synthesizer", _stateful_synthesizer())
        super().__init__(
            scope,
            construct_id,
            termination_protection=config.protect_data,
            description=f"job tickets {config.name}: tables, queues, documents bucket, parameters, status event bus",
            **kwargs,
        )
        removal_policy = RemovalPolicy.RETAIN if config.protect_data else RemovalPolicy.DESTROY
        self.config = config

        self.job_store = JobStore(
            self,
            "JobStore",
            removal_policy=removal_policy,
            deletion_protection=config.protect_data,
            stream=config.status_events,
        )
        self.status_event_bus: StatusEventBus | None = None
        if config.status_events:
            self.status_event_bus = StatusEventBus(
                self, "StatusEvents", bus_name=config.status_event_bus_name, removal_policy=removal_policy
            )
        self.access_store = AccessStore(
            self, "AccessStore", removal_policy=removal_policy, deletion_protection=config.protect_data
        )
        self.queues = Queues(
            self,
            "Queues",
            visibility_timeout=Duration.seconds(config.worker.visibility_timeout_s),
            # One receive per attempt: the worker decides FAILED_FINAL on its last attempt, the DLQ catches
            # what a crash or a poison message keeps from any decision.
            max_receive_count=config.worker.max_attempts,
            dead_letter_retention=Duration.days(config.dlq_retention_days),
            # AWS's guidance for SQS event sources: at least six times the function timeout.
            dead_letter_visibility_timeout=Duration.seconds(6 * config.dlq_handler_timeout_s),
            removal_policy=removal_policy,
        )
        self.callback_queues = CallbackQueues(
            self,
            "Callbacks",
            # AWS's guidance for SQS event sources: at least six times the function timeout.
            visibility_timeout=Duration.seconds(6 * config.callbacks.function_timeout_s),
            max_receive_count=config.callbacks.max_receive_count,
            dead_letter_retention=Duration.days(config.dlq_retention_days),
            removal_policy=removal_policy,
        )
        self.documents = Documents(
            self,
            "Documents",
            noncurrent_version_days=config.documents_noncurrent_days,
            access_log_days=max(config.log_retention_days, 30),
            removal_policy=removal_policy,
        )
        # Each resource the runtime needs: its setting (SSM parameter name) and its stack output.
        resources = [
            ("table-name", "TableName", self.job_store.table.table_name),
            ("access-table-name", "AccessTableName", self.access_store.table.table_name),
            ("queue-url", "QueueUrl", self.queues.jobs_queue.queue_url),
            ("high-priority-queue-url", "HighPriorityQueueUrl", self.queues.priority_queues[Priority.HIGH].queue_url),
            ("low-priority-queue-url", "LowPriorityQueueUrl", self.queues.priority_queues[Priority.LOW].queue_url),
            ("dead-letter-queue-url", "DeadLetterQueueUrl", self.queues.dead_letter_queue.queue_url),
            ("documents-bucket", "DocumentsBucketName", self.documents.bucket.bucket_name),
            ("callback-queue-url", "CallbackQueueUrl", self.callback_queues.queue.queue_url),
        ]
        # Only where allowed (local): every other environment refuses loopback callbacks by the settings' default.
        loopback = {"callback-allow-loopback": "true"} if config.callbacks.allow_loopback_http else {}
        # Names are the runtime Settings field names with dashes (runtime/settings.py).
        self.parameters = Parameters(
            self,
            "Parameters",
            path=config.ssm_path,
            values={
                "environment": config.name,
                **{setting: value for setting, _, value in resources},
                "visibility-timeout-s": str(config.worker.visibility_timeout_s),
                "max-attempts": str(config.worker.max_attempts),
                "worker-concurrency": str(config.worker.concurrency),
                "retention-days": str(config.retention_days),
                "republish-after-s": str(config.republish_after_s),
                "republish-interval-s": str(config.republish_interval_s),
                **loopback,
            },
        )

        for _, output_id, value in resources:
            CfnOutput(self, output_id, value=value)
        CfnOutput(self, "SsmPath", value=config.ssm_path)
        if self.status_event_bus is not None:
            CfnOutput(self, "StatusEventBusName", value=self.status_event_bus.bus.event_bus_name)
