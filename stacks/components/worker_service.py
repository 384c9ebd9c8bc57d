"""The worker on Fargate: consumes the priority queues, scales on their backlog per running task, protects tasks
with running jobs, and is replaced when its receive loop stops turning (container health check)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from runtime.worker.liveness import DEFAULT_FILE
from stacks.components.tasks import runtime_task
from stacks.config import WorkerConfig

# The step scaling policy QueueProcessingFargateService creates on its queue's visible messages; rebuilt under
# the same construct ID as the fast scale-out on the backlog per task.
BACKLOG_SCALING_ID = "QueueMessagesVisibleScaling"
BACKLOG_TRACKING_ID = "BacklogPerTaskTracking"
# SQS and Container Insights publish one-minute datapoints: the finest period either policy can see.
METRIC_PERIOD = Duration.minutes(1)
# The fast path adds tasks when the backlog per task is this many times the target (target tracking alone
# waits for three datapoints above the target).
BURST_FACTOR = 2
# The container's health check (runtime/worker/healthcheck.py): the receive loop must have touched its liveness
# file within MAX_AGE_S. ECS marks the container unhealthy after RETRIES failed checks INTERVAL apart, so a hung
# worker is replaced (and a deployment whose workers hang trips the circuit breaker) MAX_AGE_S + about 90 s after
# its loop stopped; checks fail without counting for START_PERIOD after the task starts.
HEALTH_CHECK = ecs.HealthCheck(
    command=["CMD", "python", "-m", "runtime.worker.healthcheck"],
    interval=Duration.seconds(30),
    timeout=Duration.seconds(10),
    retries=3,
    start_period=Duration.seconds(60),
)
# The root filesystem is read-only; the liveness file needs a writable /tmp (task storage, gone with the task).
SCRATCH_VOLUME = "tmp"
SCRATCH_PATH = str(Path(DEFAULT_FILE).parent)


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
            health_check=HEALTH_CHECK,
        )
        task.container.add_docker_label("service", "worker")
        task.task_definition.add_volume(name=SCRATCH_VOLUME)
        task.container.add_mount_points(
            ecs.MountPoint(container_path=SCRATCH_PATH, source_volume=SCRATCH_VOLUME, read_only=False)
        )
        self.task_definition = task.task_definition
        self.log_group = task.log_group
        target = worker.backlog_per_task
        # The fast path only adds tasks: removing them is target tracking's (15 minutes below the target).
        burst_steps = [
            autoscaling.ScalingInterval(upper=target * BURST_FACTOR, change=0),
            autoscaling.ScalingInterval(lower=target * BURST_FACTOR, change=+1),
            autoscaling.ScalingInterval(lower=target * BURST_FACTOR * 3, change=+3),
        ]
        self.service = ecs_patterns.QueueProcessingFargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=task.task_definition,
            # The pattern is built on the first queue (it grants consuming it and names it in QUEUE_NAME); its
            # single-queue scaling is replaced below by the backlog per task of all queues.
            queue=queues[0],
            min_scaling_capacity=worker.min_capacity,
            max_scaling_capacity=worker.max_capacity,
            # The worker is I/O bound (threads waiting on AWS): CPU says little; the backlog says it all.
            disable_cpu_based_scaling=True,
            scaling_steps=burst_steps,
            cooldown=Duration.seconds(60),
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
        )
        self.backlog_per_task = backlog_per_task(queues, self.service.service)
        self._scale_on_backlog_per_task(target=target, burst_steps=burst_steps)
        cluster.grant_task_protection(task.task_definition.task_role)

    def _scale_on_backlog_per_task(self, *, target: int, burst_steps: list[autoscaling.ScalingInterval]) -> None:
        """Target tracking holds the backlog per running task at `target`; a step policy on the same metric, which
        reacts to a single datapoint, adds tasks at once when a burst reaches BURST_FACTOR times the target.

        How fast (SQS and Container Insights publish one datapoint a minute, a minute or two after the fact):
        the step policy's alarm fires on the first datapoint at or above twice the target, about 2-3 minutes after
        the burst arrived; target tracking's own alarms need 3 datapoints above the target (about 4-5 minutes),
        and 15 below before removing a task. A new task then takes about a minute to start."""
        task_count = self.service.service.node.find_child("TaskCount")
        if not isinstance(task_count, ecs.ScalableTaskCount):
            raise TypeError("the queue processing service has no scalable task count")
        # The scalable target (child "Target") owns the step policies that scale_on_metric creates; the pattern's
        # policy is rebuilt under the same construct ID (so its logical IDs stay).
        scalable_target = task_count.node.find_child("Target")
        if not isinstance(scalable_target, autoscaling.ScalableTarget):
            raise TypeError("the queue processing service's task count has no scalable target")
        if not scalable_target.node.try_remove_child(BACKLOG_SCALING_ID):
            raise ValueError(f"the queue processing service has no {BACKLOG_SCALING_ID} policy to replace")
        task_count.scale_on_metric(
            BACKLOG_SCALING_ID,
            metric=self.backlog_per_task,
            scaling_steps=burst_steps,
            cooldown=Duration.seconds(60),
            metric_aggregation_type=autoscaling.MetricAggregationType.MAXIMUM,
        )
        # CDK's target tracking takes only a plain metric; the L1 policy takes metric math.
        autoscaling.CfnScalingPolicy(
            self,
            BACKLOG_TRACKING_ID,
            policy_name="backlog-per-task",
            policy_type="TargetTrackingScaling",
            scaling_target_id=scalable_target.scalable_target_id,
            target_tracking_scaling_policy_configuration=autoscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=target,
                customized_metric_specification=autoscaling.CfnScalingPolicy.CustomizedMetricSpecificationProperty(
                    metrics=_tracking_queries(self.backlog_per_task)
                ),
                scale_out_cooldown=60,
                scale_in_cooldown=120,
            ),
        )


def running_task_count(service: ecs.BaseService) -> cloudwatch.Metric:
    """The service's running tasks, from Container Insights (on for the cluster), one datapoint a minute."""
    return cloudwatch.Metric(
        namespace="ECS/ContainerInsights",
        metric_name="RunningTaskCount",
        dimensions_map={"ClusterName": service.cluster.cluster_name, "ServiceName": service.service_name},
        statistic="Average",
        period=METRIC_PERIOD,
        label="running worker tasks",
    )


def backlog_per_task(queues: Sequence[sqs.IQueue], service: ecs.BaseService) -> cloudwatch.MathExpression:
    """Messages waiting or in flight in every priority's queue, per running worker task. In flight counts: a
    task working through long jobs is as busy as its waiting messages say it will be. A missing task count
    (Container Insights late) counts as one task, so that the backlog alone still scales."""
    using: dict[str, cloudwatch.IMetric] = {}
    for index, queue in enumerate(queues):
        using[f"visible{index}"] = queue.metric_approximate_number_of_messages_visible(
            period=METRIC_PERIOD, statistic="Maximum"
        )
        using[f"inflight{index}"] = queue.metric_approximate_number_of_messages_not_visible(
            period=METRIC_PERIOD, statistic="Maximum"
        )
    backlog = " + ".join(using)
    using["tasks"] = running_task_count(service)
    return cloudwatch.MathExpression(
        expression=f"({backlog}) / IF(FILL(tasks, 1) > 0, FILL(tasks, 1), 1)",
        using_metrics=using,
        label="messages per running task (all priority queues)",
        period=METRIC_PERIOD,
    )


_Query = autoscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty


def _tracking_queries(expression: cloudwatch.MathExpression) -> list[_Query]:
    """`expression` as the metric data queries of a target tracking policy: its metrics, then itself."""
    queries = []
    for metric_id, metric in expression.using_metrics.items():
        stat = metric.to_metric_config().metric_stat
        if stat is None:
            raise TypeError(f"target tracking takes plain metrics in its math, not {metric_id}")
        queries.append(
            _Query(
                id=metric_id,
                return_data=False,
                metric_stat=autoscaling.CfnScalingPolicy.TargetTrackingMetricStatProperty(
                    stat=stat.statistic,
                    metric=autoscaling.CfnScalingPolicy.TargetTrackingMetricProperty(
                        namespace=stat.namespace,
                        metric_name=stat.metric_name,
                        dimensions=[
                            autoscaling.CfnScalingPolicy.TargetTrackingMetricDimensionProperty(
                                name=dimension.name, value=dimension.value
                            )
                            for dimension in stat.dimensions or []
                        ],
                    ),
                ),
            )
        )
    queries.append(_Query(id="perTask", expression=expression.expression, label=expression.label, return_data=True))
    return queries
