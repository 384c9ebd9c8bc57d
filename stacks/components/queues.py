"""The jobs queues, one per priority, and their one dead-letter queue."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from runtime.domain.job import Priority
from runtime.domain.priorities import ORDER


def secure_queue(
    scope: Construct,
    construct_id: str,
    *,
    retention_period: Duration,
    removal_policy: RemovalPolicy,
    visibility_timeout: Duration | None = None,
    receive_message_wait_time: Duration | None = None,
    dead_letter_queue: sqs.DeadLetterQueue | None = None,
) -> sqs.Queue:
    """A queue as every queue of the system is made: encrypted with SQS-managed keys and SSL-only."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        visibility_timeout=visibility_timeout,
        receive_message_wait_time=receive_message_wait_time,
        retention_period=retention_period,
        dead_letter_queue=dead_letter_queue,
        removal_policy=removal_policy,
    )


# The normal queue keeps the logical ID of the one queue that came before priorities (a stateful resource).
_LOGICAL_IDS = {Priority.HIGH: "HighPriorityQueue", Priority.NORMAL: "JobsQueue", Priority.LOW: "LowPriorityQueue"}


class Queues(Construct):
    """One jobs queue per priority (runtime/domain/priorities.py), alike in everything but the name, each with
    redrive to the one DLQ after `max_receive_count` receives; all SSE and SSL-only. `jobs_queue` is normal's."""

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
        self.dead_letter_queue = secure_queue(
            self,
            "DeadLetterQueue",
            retention_period=dead_letter_retention,
            # The DLQ Lambda's event source needs this to be at least the function timeout.
            visibility_timeout=dead_letter_visibility_timeout,
            removal_policy=removal_policy,
        )
        self.priority_queues: dict[Priority, sqs.Queue] = {
            priority: secure_queue(
                self,
                _LOGICAL_IDS[priority],
                visibility_timeout=visibility_timeout,
                receive_message_wait_time=Duration.seconds(20),
                # Longer than the DLQ redrive path can take; PENDING jobs are republished anyway.
                retention_period=Duration.days(4),
                dead_letter_queue=sqs.DeadLetterQueue(
                    max_receive_count=max_receive_count, queue=self.dead_letter_queue
                ),
                removal_policy=removal_policy,
            )
            for priority in ORDER
        }
        self.jobs_queue = self.priority_queues[Priority.NORMAL]

    def grant_publish(self, grantee: iam.IGrantable) -> iam.Grant:
        """The API: send one message per job to its priority's queue; GetQueueAttributes is its readiness probe."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sqs:SendMessage", "sqs:GetQueueAttributes"],
            resource_arns=self._queue_arns(),
        )

    def grant_redrive(self, grantee: iam.IGrantable) -> iam.Grant:
        """The DLQ handler: send a fresh message for a dead-lettered job with attempts left to its priority's
        queue (runtime/domain/redrive.py). SendMessage only: it never receives from or deletes on these queues."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["sqs:SendMessage"], resource_arns=self._queue_arns()
        )

    def grant_process(self, grantee: iam.IGrantable) -> iam.Grant:
        """The worker, on every priority's queue: receive, (batch) delete, (batch) change visibility, send
        (republisher, releases); GetQueueAttributes is its readiness probe and the republisher's backlog check."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:SendMessage",
                "sqs:GetQueueAttributes",
            ],
            resource_arns=self._queue_arns(),
        )

    def _queue_arns(self) -> list[str]:
        return [queue.queue_arn for queue in self.priority_queues.values()]
