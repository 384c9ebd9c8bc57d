"""Dashboard and alarms for one environment; takes the resources it watches and never creates them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from runtime.adapters.dynamodb.schema import INDEXES
from runtime.observability.names import JOB_TYPE_DIMENSION, METRICS_NAMESPACE, SERVICE_DIMENSION, Metric
from stacks.components.api_function import ApiFunction
from stacks.components.worker_service import running_task_count
from stacks.config import AlarmSubscribers, AlarmThresholds

FIVE_MINUTES = Duration.minutes(5)
ONE_MINUTE = Duration.minutes(1)
AT_LEAST = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
ABOVE = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
# What the store asks of the jobs table (runtime/adapters/dynamodb/store.py): a throttled request of any of them,
# on the table or one of its indexes, counts in ThrottledRequests of its operation.
TABLE_OPERATIONS = ("GET_ITEM", "PUT_ITEM", "UPDATE_ITEM", "QUERY", "BATCH_GET_ITEM")
# The runtime's EMF metrics, by name from the module the runtime emits them with: a rename cannot blank a graph.
JOB_METRICS = (
    Metric.JOBS_CREATED,
    Metric.JOBS_SUCCEEDED,
    Metric.JOBS_FAILED,
    Metric.JOBS_FAILED_FINAL,
    Metric.JOBS_CANCELED,
    Metric.JOBS_REDRIVEN,
)
JOB_LATENCIES = (Metric.JOB_DURATION, Metric.QUEUE_LAG)


@dataclass(frozen=True)
class FargateApi:
    load_balancer: elbv2.ApplicationLoadBalancer
    target_group: elbv2.ApplicationTargetGroup


class Monitoring(Construct):
    """One SNS topic for every alarm, with the environment's subscribers (e-mail addresses subscribed to it,
    and an existing topic that every alarm notifies as well); the dashboard shows the API, the queues, the
    worker and the jobs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        thresholds: AlarmThresholds,
        service_name: str,
        table: dynamodb.ITable,
        jobs_queues: Mapping[str, sqs.IQueue],
        dead_letter_queue: sqs.IQueue,
        worker_service: ecs.BaseService,
        worker_min_tasks: int,
        dlq_function: lambda_.IFunction,
        api: FargateApi | ApiFunction,
        subscribers: AlarmSubscribers,
        status_events_dead_letter_queue: sqs.IQueue | None = None,
        callback_dead_letter_queue: sqs.IQueue | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarm_topic = sns.Topic(self, "AlarmTopic", display_name=f"{dashboard_name} alarms", enforce_ssl=True)
        for email in subscribers.emails:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(email))
        actions = [cw_actions.SnsAction(self.alarm_topic)]
        if subscribers.topic_arn:
            # SNS cannot subscribe one topic to another: the existing topic is a second alarm action.
            existing = sns.Topic.from_topic_arn(self, "SubscriberTopic", subscribers.topic_arn)
            actions.append(cw_actions.SnsAction(existing))

        api_requests, api_latency, api_5xx = self._api_metrics(api)
        lambda_errors = [dlq_function.metric_errors(period=FIVE_MINUTES, label="dlq handler errors")]
        if isinstance(api, ApiFunction):
            lambda_errors.append(api.function.metric_errors(period=FIVE_MINUTES, label="api function errors"))

        dlq_depth = dead_letter_queue.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(1), statistic="Maximum", label="dlq messages"
        )
        # The oldest message of any priority's queue: a starved or stuck queue shows whichever it is.
        oldest_age = cloudwatch.MathExpression(
            expression=f"MAX([{', '.join(jobs_queues)}])",
            using_metrics={
                name: queue.metric_approximate_age_of_oldest_message(period=Duration.minutes(1), statistic="Maximum")
                for name, queue in jobs_queues.items()
            },
            period=Duration.minutes(1),
            label="oldest message age (s)",
        )
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        def add_alarm(
            alarm_id: str,
            metric: cloudwatch.IMetric,
            description: str,
            threshold: float,
            *,
            comparison: cloudwatch.ComparisonOperator = AT_LEAST,
            evaluation_periods: int = 1,
            missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
        ) -> None:
            # No data is no trouble (an idle queue or API emits nothing), unless said otherwise.
            self.alarms[alarm_id] = cloudwatch.Alarm(
                self,
                alarm_id,
                metric=metric,
                alarm_description=description,
                threshold=threshold,
                comparison_operator=comparison,
                evaluation_periods=evaluation_periods,
                treat_missing_data=missing,
            )

        add_alarm("DeadLetterQueueNotEmpty", dlq_depth, "jobs reached the dead-letter queue", thresholds.dlq_messages)
        add_alarm(
            "OldestMessageTooOld",
            oldest_age,
            "the oldest job message waits too long: workers are behind or down",
            thresholds.oldest_message_age_s,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=3,
        )
        if status_events_dead_letter_queue is not None:
            add_alarm(
                "StatusEventsDeadLettered",
                status_events_dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic="Maximum", label="status events dead-lettered"
                ),
                "status events could not be put on the bus: subscribers missed status changes",
                1,
            )
        if callback_dead_letter_queue is not None:
            add_alarm(
                "CallbacksDeadLettered",
                callback_dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic="Maximum", label="callback deliveries dead-lettered"
                ),
                "callback delivery messages kept failing (store or queue errors): those jobs' callbacks stay pending",
                1,
            )
        add_alarm("Api5xx", api_5xx, "the api answers 5xx", thresholds.api_5xx_per_5min)
        for index, errors in enumerate(lambda_errors):
            add_alarm(
                "DlqHandlerErrors" if index == 0 else "ApiFunctionErrors",
                errors,
                f"{errors.label} in 5 minutes",
                thresholds.lambda_errors_per_5min,
            )
        add_alarm(
            "DeadLetterQueueStuck",
            dead_letter_queue.metric_approximate_age_of_oldest_message(period=ONE_MINUTE, statistic="Maximum"),
            "a dead letter waits too long: the dlq handler keeps failing on it or does not run",
            thresholds.dlq_oldest_message_age_s,
            comparison=ABOVE,
        )
        add_alarm(
            "JobsFailedFinal",
            self._failed_final(service_name),
            "jobs end FAILED_FINAL in numbers: a broken dependency, job type or deployment",
            thresholds.jobs_failed_final_per_5min,
        )
        worker_tasks = running_task_count(worker_service)
        # Missing data is trouble here: no worker task reports nothing at all.
        add_alarm(
            "WorkerTasksBelowMinimum",
            worker_tasks,
            f"fewer worker tasks run than the service's minimum ({worker_min_tasks}) for 5 minutes",
            worker_min_tasks,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=5,
            missing=cloudwatch.TreatMissingData.BREACHING,
        )
        if isinstance(api, FargateApi):
            add_alarm(
                "ApiUnhealthyHosts",
                api.target_group.metrics.unhealthy_host_count(period=ONE_MINUTE, statistic="Maximum"),
                "api tasks fail the load balancer's health check",
                thresholds.alb_unhealthy_hosts,
                evaluation_periods=3,
            )
            add_alarm(
                "ApiSlow",
                api.load_balancer.metrics.target_response_time(period=ONE_MINUTE, statistic="p90"),
                "the api's p90 response time stays high",
                thresholds.api_p90_latency_s,
                comparison=ABOVE,
                evaluation_periods=5,
            )
        add_alarm(
            "JobsTableThrottled",
            table.metric_throttled_requests_for_operations(
                operations=[dynamodb.Operation[operation] for operation in TABLE_OPERATIONS],
                period=FIVE_MINUTES,
                label="throttled requests",
            ),
            "requests to the jobs table (or one of its indexes) are throttled",
            thresholds.dynamodb_throttles_per_5min,
        )
        for gsi in INDEXES:
            add_alarm(
                f"JobsIndexThrottled-{gsi.name}",
                cloudwatch.MathExpression(
                    expression="FILL(reads, 0) + FILL(writes, 0)",
                    using_metrics={
                        kind: cloudwatch.Metric(
                            namespace="AWS/DynamoDB",
                            metric_name=f"{name}ThrottleEvents",
                            dimensions_map={"TableName": table.table_name, "GlobalSecondaryIndexName": gsi.name},
                            statistic="Sum",
                            period=FIVE_MINUTES,
                        )
                        for kind, name in (("reads", "Read"), ("writes", "Write"))
                    },
                    label=f"{gsi.name} throttle events",
                    period=FIVE_MINUTES,
                ),
                f"the jobs table's index {gsi.name} throttles reads or writes",
                thresholds.dynamodb_throttles_per_5min,
            )
        functions = [("DlqHandlerThrottled", "dlq handler", dlq_function)]
        if isinstance(api, ApiFunction):
            functions.append(("ApiFunctionThrottled", "api function", api.function))
        for alarm_id, name, function in functions:
            add_alarm(
                alarm_id,
                function.metric_throttles(period=FIVE_MINUTES, statistic="Sum", label=f"{name} throttles"),
                f"{name} invocations are throttled",
                thresholds.lambda_throttles_per_5min,
            )
        for alarm in self.alarms.values():
            alarm.add_alarm_action(*actions)
            alarm.add_ok_action(*actions)

        throttles = cloudwatch.MathExpression(
            expression="reads + writes",
            using_metrics={
                "reads": table.metric("ReadThrottleEvents", statistic="Sum", period=FIVE_MINUTES),
                "writes": table.metric("WriteThrottleEvents", statistic="Sum", period=FIVE_MINUTES),
            },
            label="table throttle events",
            period=FIVE_MINUTES,
        )
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="API requests", left=[api_requests], width=8),
            cloudwatch.GraphWidget(title="API latency", left=[api_latency], width=8),
            cloudwatch.GraphWidget(title="API 5xx", left=[api_5xx], width=8),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Jobs queue depth",
                left=[
                    metric
                    for name, queue in jobs_queues.items()
                    for metric in (
                        queue.metric_approximate_number_of_messages_visible(label=f"{name} visible"),
                        queue.metric_approximate_number_of_messages_not_visible(label=f"{name} in flight"),
                    )
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(title="Age of oldest message", left=[oldest_age], width=8),
            cloudwatch.GraphWidget(title="DLQ depth", left=[dlq_depth], width=8),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Jobs (EMF)", left=[self._job_metric(service_name, n) for n in JOB_METRICS], width=8
            ),
            cloudwatch.GraphWidget(
                title="Job duration and queue lag p90 (ms, EMF)",
                left=[self._job_metric(service_name, n, statistic="p90") for n in JOB_LATENCIES],
                width=8,
            ),
            cloudwatch.GraphWidget(title="Worker tasks", left=[worker_tasks], width=8),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Lambda errors", left=lambda_errors, width=12),
            cloudwatch.GraphWidget(title="Table throttles", left=[throttles], width=12),
        )

    @staticmethod
    def _api_metrics(
        api: FargateApi | ApiFunction,
    ) -> tuple[cloudwatch.Metric, cloudwatch.Metric, cloudwatch.Metric | cloudwatch.MathExpression]:
        if isinstance(api, ApiFunction):
            return (
                api.http_api.metric_count(period=FIVE_MINUTES, label="requests"),
                api.http_api.metric_latency(period=FIVE_MINUTES, statistic="p90", label="latency p90"),
                api.http_api.metric_server_error(period=FIVE_MINUTES, label="5xx"),
            )
        metrics = api.load_balancer.metrics
        five_xx = cloudwatch.MathExpression(
            expression="FILL(elb, 0) + FILL(targets, 0)",
            using_metrics={
                "elb": metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=FIVE_MINUTES),
                "targets": metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=FIVE_MINUTES),
            },
            label="5xx",
            period=FIVE_MINUTES,
        )
        return (
            metrics.request_count(period=FIVE_MINUTES, label="requests"),
            metrics.target_response_time(period=FIVE_MINUTES, statistic="p90", label="latency p90"),
            five_xx,
        )

    @staticmethod
    def _failed_final(service_name: str) -> cloudwatch.MathExpression:
        """FAILED_FINAL jobs of every job type (the worker and the DLQ handler emit them with a JobType
        dimension): a CloudWatch Metrics Insights query, the one kind of query over a dimension's unknown values
        an alarm may use (a SEARCH may not)."""
        query = (
            f"SELECT SUM({Metric.JOBS_FAILED_FINAL.value}) "
            f'FROM SCHEMA("{METRICS_NAMESPACE}", {JOB_TYPE_DIMENSION}, {SERVICE_DIMENSION}) '
            f"WHERE {SERVICE_DIMENSION} = '{service_name}'"
        )
        return cloudwatch.MathExpression(expression=query, label=Metric.JOBS_FAILED_FINAL.value, period=FIVE_MINUTES)

    @staticmethod
    def _job_metric(service_name: str, metric_name: Metric, *, statistic: str = "Sum") -> cloudwatch.IMetric:
        # EMF lines may carry extra dimensions (e.g. JobType) next to Service: search, then add them up.
        search = (
            f'SEARCH(\'Namespace="{METRICS_NAMESPACE}" MetricName="{metric_name.value}" '
            f'{SERVICE_DIMENSION}="{service_name}"\', '
            f"'{statistic}', 300)"
        )
        expression = f"SUM({search})" if statistic == "Sum" else f"MAX({search})"
        return cloudwatch.MathExpression(expression=expression, label=metric_name.value, period=FIVE_MINUTES)
