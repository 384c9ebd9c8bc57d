"""Fargate task definitions for the runtime's containers: read-only root, logs with retention, tracing sidecar."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.components.runtime_env import ADOT_COLLECTOR_IMAGE, collector_config, grant_xray_write, otlp_endpoint


@dataclass(frozen=True)
class RuntimeTask:
    task_definition: ecs.FargateTaskDefinition
    container: ecs.ContainerDefinition
    log_group: logs.LogGroup


def runtime_task(
    scope: Construct,
    *,
    image: ecs.ContainerImage,
    cpu: int,
    memory_mib: int,
    environment: dict[str, str],
    log_retention: logs.RetentionDays,
    tracing_enabled: bool,
    container_port: int | None = None,
    stop_timeout_s: int | None = None,
    health_check: ecs.HealthCheck | None = None,
) -> RuntimeTask:
    """One application container (named "app") plus, when tracing, the ADOT collector beside it, which the app
    sends its spans to (OTLP/HTTP on the task's loopback) and which forwards them to X-Ray."""
    log_group = logs.LogGroup(scope, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
    task_definition = ecs.FargateTaskDefinition(
        scope,
        "Task",
        cpu=cpu,
        memory_limit_mib=memory_mib,
        runtime_platform=ecs.RuntimePlatform(
            cpu_architecture=ecs.CpuArchitecture.X86_64, operating_system_family=ecs.OperatingSystemFamily.LINUX
        ),
    )
    container = task_definition.add_container(
        "app",
        image=image,
        environment=environment,
        logging=ecs.LogDrivers.aws_logs(stream_prefix="app", log_group=log_group),
        readonly_root_filesystem=True,
        stop_timeout=Duration.seconds(stop_timeout_s) if stop_timeout_s else None,
        port_mappings=[ecs.PortMapping(container_port=container_port)] if container_port else None,
        health_check=health_check,
    )
    if tracing_enabled:
        collector = task_definition.add_container(
            "otel-collector",
            image=ecs.ContainerImage.from_registry(ADOT_COLLECTOR_IMAGE),
            cpu=32,
            memory_reservation_mib=128,
            # Tracing is best effort: a failing collector must not stop the service.
            essential=False,
            # The collector reads its configuration from AOT_CONFIG_CONTENT; no port mapping: only the app
            # container, on the task's loopback, sends to it.
            environment={"AOT_CONFIG_CONTENT": collector_config(Stack.of(scope).region)},
            logging=ecs.LogDrivers.aws_logs(stream_prefix="otel-collector", log_group=log_group),
            readonly_root_filesystem=True,
        )
        container.add_container_dependencies(
            ecs.ContainerDependency(container=collector, condition=ecs.ContainerDependencyCondition.START)
        )
        container.add_environment("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_endpoint())
        grant_xray_write(task_definition.task_role)
    return RuntimeTask(task_definition=task_definition, container=container, log_group=log_group)
