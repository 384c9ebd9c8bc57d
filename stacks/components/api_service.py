"""The HTTP API on Fargate behind a public Application Load Balancer."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.components.tasks import runtime_task
from stacks.config import ApiConfig

API_PORT = 8080


class ApiService(Construct):
    """`python -m runtime.api --port 8080`; the ALB checks /healthz, deployments roll back on failure."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: ecs.ICluster,
        image: ecs.ContainerImage,
        api: ApiConfig,
        environment: dict[str, str],
        log_retention: logs.RetentionDays,
        tracing_enabled: bool,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        task = runtime_task(
            self,
            image=image,
            cpu=api.cpu,
            memory_mib=api.memory_mib,
            environment={**environment, "AWS_REGION": cluster.stack.region},
            log_retention=log_retention,
            tracing_enabled=tracing_enabled,
            container_port=API_PORT,
        )
        task.container.add_docker_label("service", "api")
        self.task_definition = task.task_definition
        self.log_group = task.log_group
        self.service = ecs_patterns.ApplicationLoadBalancedFargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=task.task_definition,
            desired_count=api.desired_count,
            public_load_balancer=True,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            # Full capacity stays in service during a deployment; new tasks start beside the old ones.
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=Duration.seconds(30),
        )
        self.service.target_group.configure_health_check(
            path="/healthz",
            healthy_http_codes="200",
            interval=Duration.seconds(15),
            healthy_threshold_count=2,
            unhealthy_threshold_count=3,
        )
        # Long enough for in-flight requests (the API answers in milliseconds), short for fast deployments.
        self.service.target_group.set_attribute("deregistration_delay.timeout_seconds", "30")
        self.load_balancer = self.service.load_balancer
        self.load_balancer.set_attribute("routing.http.drop_invalid_header_fields.enabled", "true")
        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            # ALB access logs only support SSE-S3.
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(90))],
            removal_policy=removal_policy,
        )
        self.load_balancer.log_access_logs(self.access_logs_bucket, prefix="alb")
        scaling = self.service.service.auto_scale_task_count(
            min_capacity=api.desired_count, max_capacity=api.max_capacity
        )
        scaling.scale_on_cpu_utilization("Cpu", target_utilization_percent=60)
        scaling.scale_on_request_count("Requests", requests_per_target=500, target_group=self.service.target_group)
