"""The callback queue (deliveries to make, each delayed as its retry schedule says) and its dead-letter queue."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.components.queues import secure_queue


class CallbackQueues(Construct):
    """SSE and SSL-only like the jobs queues. A message that its handler fails `max_receive_count` times (store or
    queue errors, never an endpoint's answer: those are retried by new delayed messages) goes to the DLQ."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        visibility_timeout: Duration,
        max_receive_count: int,
        dead_letter_retention: Duration,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = secure_queue(
            self,
            "DeadLetterQueue",
            retention_period=dead_letter_retention,
            removal_policy=removal_policy,
        )
        self.queue = secure_queue(
            self,
            "Queue",
            visibility_timeout=visibility_timeout,
            # A retry waits at most an hour (in hops of 15 min): a day leaves room for outages of the consumer.
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=max_receive_count, queue=self.dead_letter_queue),
            removal_policy=removal_policy,
        )

    def grant_enqueue(self, grantee: iam.IGrantable) -> iam.Grant:
        """Whoever ends jobs (worker, API cancel, DLQ Lambda) or retries deliveries: SendMessage, nothing else."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["sqs:SendMessage"], resource_arns=[self.queue.queue_arn]
        )
