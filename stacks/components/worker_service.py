"""The worker on Fargate: consumes the priority queues, scales on their backlog, protects tasks with running jobs."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.components.tasks import runtime_task
from stacks.config import WorkerConfig

# The step scaling policy QueueProcessingFargateService creates on its queue's visible messages.
BACKLOG_SCALING_ID = "QueueMessagesVisibleScaling"


class WorkerService(Construct):
    """`python -m runtime.worker`; it also runs the republisher, so at least one task always runs.

    Scale-in protection (runtime/worker/task_protection.py): when the worker goes from holding no job to
    holding one, it PUTs {"ProtectionEnabled": true, "ExpiresInMinutes": n} to the ECS_AGENT_URI that ECS sets
    in the task, at $ECS_AGENT_URI/task-protection/v1/state; n covers a little more than one heartbeat interval
    and the heartbeat renews it before it runs out. Going idle, or stopping, it PUTs {"ProtectionEnabled":
    false}. A failed PUT is logged and counted (TaskProtectionFailures) and never holds up a job. The agent
    calls ecs:UpdateTaskProtection with the task role's credentials, so the task role is granted exactly that
    (cluster.grant_task_protection) on the cluster's tasks."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: ecs.Cluster,
        image: ecs.ContainerImage,
        queues: Sequence[sqs.IQueue],
        worker: WorkerConfig,
        environment: dict[str, str],
        log_retention: logs.RetentionDays,
        tracing_enabled: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        task = runtime_task(
            self,
            image=image,
            cpu=worker.cpu,
            memory_mib=worker.memory_mib,
            environment={
                **environment,
                "AWS_REGION": cluster.stack.region,
                # Drain within ECS's stop timeout: SIGTERM, then SIGKILL after stop_timeout_s.
                "JOBS_SHUTDOWN_DEADLINE_S": str(max(worker.stop_timeout_s - 10, 5)),
            },
            log_retention=log_retention,
            tracing_enabled=tracing_enabled,
            stop_timeout_s=worker.stop_timeout_s,
        )
        task.container.add_docker_label("service", "worker")
        self.task_definition = task.task_definition
        self.log_group = task.log_group
        backlog = worker.backlog_per_task
        scaling_steps = [
            autoscaling.ScalingInterval(upper=0, change=-1),
            autoscaling.ScalingInterval(lower=backlog, change=+1),
            autoscaling.ScalingInterval(lower=backlog * 5, change=+3),
        ]
        cooldown = Duration.seconds(120)
        self.service = ecs_patterns.QueueProcessingFargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=task.task_definition,
            # The pattern is built on the first queue (it grants consuming it and names it in QUEUE_NAME); its backlog
            # metric is replaced below by all queues' sum.
            queue=queues[0],
            min_scaling_capacity=worker.min_capacity,
            max_scaling_capacity=worker.max_capacity,
            # The worker is I/O bound (threads waiting on AWS): CPU says little; the backlog says it all.
            disable_cpu_based_scaling=True,
            scaling_steps=scaling_steps,
            cooldown=cooldown,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
        )
        self._scale_on_total_backlog(queues, scaling_steps=scaling_steps, cooldown=cooldown)
        cluster.grant_task_protection(task.task_definition.task_role)

    def _scale_on_total_backlog(
        self, queues: Sequence[sqs.IQueue], *, scaling_steps: list[autoscaling.ScalingInterval], cooldown: Duration
    ) -> None:
        """The pattern scales on one queue's visible messages; a job waiting in any priority's queue is backlog.
        Its step policy is rebuilt under the same construct ID (so its logical IDs stay) on a metric math sum."""
        task_count = self.service.service.node.find_child("TaskCount")
        if not isinstance(task_count, ecs.ScalableTaskCount):
            raise TypeError("the queue processing service has no scalable task count")
        # The scalable target (child "Target") owns the step policies that scale_on_metric creates.
        if not task_count.node.find_child("Target").node.try_remove_child(BACKLOG_SCALING_ID):
            raise ValueError(f"the queue processing service has no {BACKLOG_SCALING_ID} policy to replace")
        visible = {
            f"q{index}": queue.metric_approximate_number_of_messages_visible() for index, queue in enumerate(queues)
        }
        task_count.scale_on_metric(
            BACKLOG_SCALING_ID,
            metric=cloudwatch.MathExpression(
                expression=" + ".join(visible),
                using_metrics=visible,
                label="visible messages in all priority queues",
                period=next(iter(visible.values())).period,
            ),
            scaling_steps=scaling_steps,
            cooldown=cooldown,
            # What the pattern's single-queue policy used (its metric's statistic).
            metric_aggregation_type=autoscaling.MetricAggregationType.MAXIMUM,
        )
