"""Fargate task definitions for the runtime's containers: read-only root, logs with retention, X-Ray sidecar."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.components.runtime_env import XRAY_DAEMON_IMAGE, XRAY_DAEMON_PORT, grant_xray_write


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
) -> RuntimeTask:
    """One application container (named "app") plus, when tracing, the X-Ray daemon beside it."""
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
    )
    if tracing_enabled:
        daemon = task_definition.add_container(
            "xray-daemon",
            image=ecs.ContainerImage.from_registry(XRAY_DAEMON_IMAGE),
            cpu=32,
            memory_reservation_mib=64,
            # Tracing is best effort: a failing daemon must not stop the service.
            essential=False,
            logging=ecs.LogDrivers.aws_logs(stream_prefix="xray", log_group=log_group),
            port_mappings=[ecs.PortMapping(container_port=XRAY_DAEMON_PORT, protocol=ecs.Protocol.UDP)],
            readonly_root_filesystem=True,
        )
        container.add_container_dependencies(
            ecs.ContainerDependency(container=daemon, condition=ecs.ContainerDependencyCondition.START)
        )
        container.add_environment("AWS_XRAY_DAEMON_ADDRESS", f"127.0.0.1:{XRAY_DAEMON_PORT}")
        grant_xray_write(task_definition.task_role)
    return RuntimeTask(task_definition=task_definition, container=container, log_group=log_group)
