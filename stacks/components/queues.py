"""The jobs queue and its dead-letter queue."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct


class Queues(Construct):
    """Jobs queue with redrive to a DLQ after `max_receive_count` receives; both SSE and SSL-only."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        visibility_timeout: Duration,
        max_receive_count: int,
        dead_letter_retention: Duration,
        dead_letter_visibility_timeout: Duration,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=dead_letter_retention,
            # The DLQ Lambda's event source needs this to be at least the function timeout.
            visibility_timeout=dead_letter_visibility_timeout,
            removal_policy=removal_policy,
        )
        self.jobs_queue = sqs.Queue(
            self,
            "JobsQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=visibility_timeout,
            receive_message_wait_time=Duration.seconds(20),
            # Longer than the DLQ redrive path can take; PENDING jobs are republished anyway.
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=max_receive_count, queue=self.dead_letter_queue),
            removal_policy=removal_policy,
        )

    def grant_publish(self, grantee: iam.IGrantable) -> iam.Grant:
        """The API: send one message per job; GetQueueAttributes is its readiness probe."""
        return self.jobs_queue.grant(grantee, "sqs:SendMessage", "sqs:GetQueueAttributes")

    def grant_process(self, grantee: iam.IGrantable) -> iam.Grant:
        """The worker: receive, (batch) delete, (batch) change visibility, probe; and send (republisher)."""
        return self.jobs_queue.grant(
            grantee,
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:SendMessage",
            "sqs:GetQueueAttributes",
        )
