"""The HTTP API on Fargate behind a public Application Load Balancer that speaks HTTPS on its own domain."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from constructs import Construct

from stacks.components.buckets import access_logs_bucket
from stacks.components.tasks import runtime_task
from stacks.config import ApiConfig, DomainConfig, OidcConfig

API_PORT = 8080
# TLS 1.3 and 1.2 with AEAD ciphers and forward secrecy only, plus post-quantum hybrid key exchange.
TLS_POLICY = elbv2.SslPolicy.TLS13_12_RES_PQ
# Readiness names the dependencies the task waits for: only the target-group health check (which reaches the
# tasks directly, not through a listener) and operators inside the VPC need it; the internet gets a 404.
HIDDEN_PATHS = ["/readyz", "/readyz/*"]
# The paths the ALB verifies a JWT on when the environment configures an issuer; the rest stays open.
AUTHENTICATED_PATHS = ["/api/*"]
NOT_FOUND_BODY = '{"error": "not_found", "detail": "no such resource"}'


class ApiService(Construct):
    """`python -m runtime.api --port 8080`; the ALB checks /healthz, deployments roll back on failure.

    HTTPS on 443 with an ACM certificate (DNS-validated in the given zone) and an alias record; port 80 only
    redirects to 443. With `oidc` (and its verify_at_edge), the HTTPS listener verifies the bearer JWT on /api/*
    before forwarding; the application verifies it again."""

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
        domain: DomainConfig,
        oidc: OidcConfig | None,
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
        # Given, not looked up: synthesis needs no AWS access and the template does not depend on who ran it.
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=domain.hosted_zone_id, zone_name=domain.zone_name
        )
        self.certificate = acm.Certificate(
            self,
            "Certificate",
            domain_name=domain.record_name,
            validation=acm.CertificateValidation.from_dns(zone),
        )
        self.url = domain.url
        self.service = ecs_patterns.ApplicationLoadBalancedFargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=task.task_definition,
            desired_count=api.desired_count,
            public_load_balancer=True,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificate=self.certificate,
            ssl_policy=TLS_POLICY,
            redirect_http=True,
            domain_name=domain.record_name,
            domain_zone=zone,
            record_type=ecs_patterns.ApplicationLoadBalancedServiceRecordType.ALIAS,
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
        if api.load_balancer_deletion_protection:
            self.load_balancer.set_attribute("deletion_protection.enabled", "true")
        listener = self.service.listener
        listener.add_action(
            "HideReadiness",
            priority=1,
            conditions=[elbv2.ListenerCondition.path_patterns(HIDDEN_PATHS)],
            action=elbv2.ListenerAction.fixed_response(
                404, content_type="application/json", message_body=NOT_FOUND_BODY
            ),
        )
        if oidc is not None and oidc.verify_at_edge:
            # The load balancer fetches the issuer's signing keys from the JWKS URL itself.
            self.load_balancer.connections.allow_to_any_ipv4(ec2.Port.tcp(443), "fetch the oidc issuer's jwks")
            # The ALB checks the signature (RS256, keys from the JWKS URL), iss and exp (nbf and iat when present);
            # the application checks aud and maps the tenant claim. API keys are not JWTs: they fail here.
            listener.add_action(
                "VerifyJwt",
                priority=10,
                conditions=[elbv2.ListenerCondition.path_patterns(AUTHENTICATED_PATHS)],
                action=elbv2.ListenerAction.authenticate_jwt(
                    issuer=oidc.issuer,
                    jwks_endpoint=oidc.jwks_url,
                    next=elbv2.ListenerAction.forward([self.service.target_group]),
                ),
            )
        self.access_logs_bucket = access_logs_bucket(
            self, "AccessLogs", expire_after_days=90, removal_policy=removal_policy
        )
        self.load_balancer.log_access_logs(self.access_logs_bucket, prefix="alb")
        scaling = self.service.service.auto_scale_task_count(
            min_capacity=api.desired_count, max_capacity=api.max_capacity
        )
        scaling.scale_on_cpu_utilization("Cpu", target_utilization_percent=60)
        scaling.scale_on_request_count("Requests", requests_per_target=500, target_group=self.service.target_group)
