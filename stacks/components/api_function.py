"""The HTTP API as a Lambda function (the same FastAPI app through Mangum) behind an API Gateway HTTP API."""

from __future__ import annotations

import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.components.image_function import image_function
from stacks.config import ApiConfig, OidcConfig

API_HANDLER = "runtime.api.lambda_handler.handler"
# Open by contract (API.md): they stay reachable without a token when the JWT authorizer guards the rest.
OPEN_PATHS = ("/healthz", "/readyz", "/docs", "/openapi.json")


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    """Stage access logs as JSON into a log group (IAccessLogSettings has no concrete class in Python)."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.json_with_standard_fields(
            caller=False,
            http_method=True,
            ip=True,
            protocol=True,
            request_time=True,
            resource_path=True,
            response_length=True,
            status=True,
            user=False,
        )


class ApiFunction(Construct):
    """Cheaper than Fargate + ALB when traffic is low (dev): no idle tasks, no load balancer hours.

    The stage is throttled (rate and burst from the config). With `oidc` (and its verify_at_edge), a JWT
    authorizer checks the bearer token (signature, iss, aud, exp, nbf) on every route but the open ones;
    the application verifies it again. Without it, the application alone authenticates (API keys)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.DockerImageCode,
        api: ApiConfig,
        environment: dict[str, str],
        log_retention: logs.RetentionDays,
        tracing_enabled: bool,
        oidc: OidcConfig | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function, self.log_group = image_function(
            self,
            code=code,
            memory_mib=api.lambda_memory_mib,
            timeout=Duration.seconds(api.lambda_timeout_s),
            environment=environment,
            log_retention=log_retention,
            tracing_enabled=tracing_enabled,
        )
        integration = integrations.HttpLambdaIntegration("Lambda", self.function)
        self.jwt_authorizer: authorizers.HttpJwtAuthorizer | None = None
        if oidc is not None and oidc.verify_at_edge:
            self.jwt_authorizer = authorizers.HttpJwtAuthorizer(
                "Jwt", oidc.issuer, jwt_audience=[oidc.audience], identity_source=["$request.header.Authorization"]
            )
        self.http_api = apigwv2.HttpApi(
            self,
            "HttpApi",
            description="job tickets api",
            default_integration=integration,
            default_authorizer=self.jwt_authorizer,
            create_default_stage=False,
        )
        self.open_routes: list[apigwv2.HttpRoute] = []
        if self.jwt_authorizer is not None:
            for path in OPEN_PATHS:
                self.open_routes += self.http_api.add_routes(
                    path=path,
                    # HEAD too: health probes that only look at the status (runtime/api/routes_health.py).
                    methods=[apigwv2.HttpMethod.GET, apigwv2.HttpMethod.HEAD],
                    integration=integration,
                    authorizer=apigwv2.HttpNoneAuthorizer(),
                )
        self.access_log_group = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            access_log_settings=_AccessLogs(self.access_log_group),
            throttle=apigwv2.ThrottleSettings(rate_limit=api.throttle_rate_per_s, burst_limit=api.throttle_burst),
        )

    @property
    def url(self) -> str:
        return self.stage.url
