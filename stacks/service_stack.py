"""The stateless stack: network, API (Fargate behind ALB and WAF, or Lambda), worker, DLQ Lambda, the status
events' pipe and monitoring."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack, SymlinkFollowMode
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk.aws_ecr_assets import Platform
from constructs import Construct

from stacks.components.api_function import API_HANDLER, ApiFunction
from stacks.components.api_service import ApiService
from stacks.components.callback_delivery import CALLBACK_HANDLER, CallbackDelivery
from stacks.components.dlq_handler import DLQ_HANDLER, DlqHandler
from stacks.components.monitoring import FargateApi, Monitoring
from stacks.components.network import Network
from stacks.components.runtime_env import api_environment, runtime_environment, service_name
from stacks.components.status_events import StatusEventsPipe
from stacks.components.web_acl import WebAcl
from stacks.components.worker_service import WorkerService
from stacks.config import EnvironmentConfig
from stacks.stateful_stack import StatefulStack

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}

# The repository's .dockerignore decides what is in the images. On top of it, CDK's image assets leave out .build:
# its wheels serve only the offline podman build (the Dockerfile's wheel[s] glob copes without them, and a CDK
# deploy builds with network access), and its podman storage holds whole root filesystems with /proc symlinks.
# linux/amd64 whatever the builder is: the tasks and functions run on X86_64, and an arm64 laptop would otherwise
# push arm64 images that fail to start there.
IMAGE_CONTEXT: dict[str, Any] = {
    "exclude": [".build", ".venv", ".git", "cdk.out", "node_modules", ".cache"],
    "follow_symlinks": SymlinkFollowMode.NEVER,
    "platform": Platform.LINUX_AMD64,
}


def log_retention(days: int) -> logs.RetentionDays:
    try:
        return _RETENTION[days]
    except KeyError:
        raise ValueError(f"unsupported log retention days: {days}, expected one of {sorted(_RETENTION)}") from None


class ServiceStack(Stack):
    """Everything that can be replaced at will; receives the stateful resources as objects."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        stateful: StatefulStack,
        source_directory: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"job tickets {config.name}: api, worker, dlq handler, callback delivery, monitoring",
            **kwargs,
        )
        self.add_stack_dependency(stateful)
        self.config = config
        retention = log_retention(config.log_retention_days)
        environment = runtime_environment(config)
        job_store, queues, documents, parameters = (
            stateful.job_store,
            stateful.queues,
            stateful.documents,
            stateful.parameters,
        )
        # One Dockerfile (repo root) with a target per process; both Lambdas share the `lambda` image.
        lambda_image: dict[str, Any] = {"directory": source_directory, "target": "lambda", **IMAGE_CONTEXT}

        self.network = Network(
            self, "Network", max_azs=config.max_azs, nat_gateways=config.nat_gateways, log_retention=retention
        )

        self.dlq_handler = DlqHandler(
            self,
            "DlqHandler",
            code=lambda_.DockerImageCode.from_image_asset(**lambda_image, cmd=[DLQ_HANDLER]),
            dead_letter_queue=queues.dead_letter_queue,
            timeout=Duration.seconds(config.dlq_handler_timeout_s),
            concurrency=config.dlq_handler_concurrency,
            environment=environment,
            log_retention=retention,
            tracing_enabled=config.tracing_enabled,
        )
        job_store.grant_finalize(self.dlq_handler.function)
        # Its redrives go to the jobs queues, whose URLs it reads with the rest of its settings from SSM.
        queues.grant_redrive(self.dlq_handler.function)
        parameters.grant_read_by_path(self.dlq_handler.function)
        callbacks = stateful.callback_queues
        callbacks.grant_enqueue(self.dlq_handler.function)

        self.callback_delivery = CallbackDelivery(
            self,
            "CallbackDelivery",
            code=lambda_.DockerImageCode.from_image_asset(**lambda_image, cmd=[CALLBACK_HANDLER]),
            callback_queue=callbacks.queue,
            timeout=Duration.seconds(config.callbacks.function_timeout_s),
            reserved_concurrency=config.callbacks.reserved_concurrency,
            environment=environment,
            log_retention=retention,
            tracing_enabled=config.tracing_enabled,
        )
        delivery = self.callback_delivery.function
        job_store.grant_deliver_callbacks(delivery)
        stateful.access_store.grant_read_webhook_secrets(delivery)
        callbacks.grant_enqueue(delivery)  # retries and hops are new delayed messages
        parameters.grant_read_by_path(delivery)

        self.worker = WorkerService(
            self,
            "Worker",
            cluster=self.network.cluster,
            image=ecs.ContainerImage.from_asset(source_directory, target="worker", **IMAGE_CONTEXT),
            # The normal queue first: it stays the queue the scaling pattern itself was built on.
            queues=[queues.jobs_queue, *(q for q in queues.priority_queues.values() if q is not queues.jobs_queue)],
            worker=config.worker,
            environment=environment,
            log_retention=retention,
            tracing_enabled=config.tracing_enabled,
        )
        worker_role = self.worker.task_definition.task_role
        job_store.grant_process(worker_role)
        queues.grant_process(worker_role)
        documents.grant_read_write_objects(worker_role)
        parameters.grant_read_by_path(worker_role)
        callbacks.grant_enqueue(worker_role)

        api: FargateApi | ApiFunction
        api_role: iam.IGrantable
        self.api_service: ApiService | None = None
        self.api_function: ApiFunction | None = None
        self.web_acl: WebAcl | None = None
        if config.api.mode == "fargate":
            assert config.domain is not None  # EnvironmentConfig refuses fargate without a domain
            self.api_service = ApiService(
                self,
                "Api",
                cluster=self.network.cluster,
                image=ecs.ContainerImage.from_asset(source_directory, target="api", **IMAGE_CONTEXT),
                api=config.api,
                environment=api_environment(config),
                log_retention=retention,
                tracing_enabled=config.tracing_enabled,
                removal_policy=RemovalPolicy.RETAIN if config.protect_data else RemovalPolicy.DESTROY,
                domain=config.domain,
                oidc=config.oidc,
            )
            self.web_acl = WebAcl(
                self, "WebAcl", waf=config.waf, resource_arn=self.api_service.load_balancer.load_balancer_arn
            )
            api_role = self.api_service.task_definition.task_role
            api = FargateApi(
                load_balancer=self.api_service.load_balancer, target_group=self.api_service.service.target_group
            )
            api_url = self.api_service.url
        else:
            self.api_function = ApiFunction(
                self,
                "Api",
                code=lambda_.DockerImageCode.from_image_asset(**lambda_image, cmd=[API_HANDLER]),
                api=config.api,
                environment=api_environment(config),
                log_retention=retention,
                tracing_enabled=config.tracing_enabled,
                oidc=config.oidc,
            )
            api_role = self.api_function.function
            api = self.api_function
            api_url = self.api_function.url
        job_store.grant_submit(api_role)
        stateful.access_store.grant_authenticate(api_role)
        queues.grant_publish(api_role)
        parameters.grant_read_by_path(api_role)
        documents.grant_read_results(api_role)
        callbacks.grant_enqueue(api_role)  # a cancel of a PENDING job ends it in the API

        self.status_events: StatusEventsPipe | None = None
        if stateful.status_event_bus is not None:
            self.status_events = StatusEventsPipe(
                self, "StatusEvents", table=job_store.table, bus=stateful.status_event_bus.bus
            )

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            dashboard_name=f"job-tickets-{config.name}",
            thresholds=config.alarms,
            service_name=service_name(config),
            table=job_store.table,
            jobs_queues={priority.value: queue for priority, queue in queues.priority_queues.items()},
            dead_letter_queue=queues.dead_letter_queue,
            worker_service=self.worker.service.service,
            worker_min_tasks=config.worker.min_capacity,
            dlq_function=self.dlq_handler.function,
            api=api,
            subscribers=config.alarm_subscribers,
            status_events_dead_letter_queue=(
                self.status_events.dead_letter_queue if self.status_events is not None else None
            ),
            callback_dead_letter_queue=callbacks.dead_letter_queue,
        )
        CfnOutput(self, "ApiUrl", value=api_url)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.alarm_topic.topic_arn)
