"""What every runtime process on AWS is told through its environment, and the grants all of them need."""

from __future__ import annotations

from aws_cdk import aws_iam as iam

from stacks.config import EnvironmentConfig

XRAY_DAEMON_IMAGE = "public.ecr.aws/xray/aws-xray-daemon:3.3.14"
XRAY_DAEMON_PORT = 2000


def runtime_environment(config: EnvironmentConfig) -> dict[str, str]:
    """Settings that are not in SSM: where SSM is, and per-process switches. Never secrets."""
    return {
        "JOBS_SSM_PATH": config.ssm_path,
        "JOBS_TRACING_ENABLED": "true" if config.tracing_enabled else "false",
        # One Service dimension per environment: the dashboard's EMF searches select on it.
        "JOBS_SERVICE_NAME": service_name(config),
    }


def api_environment(config: EnvironmentConfig) -> dict[str, str]:
    """The API's environment: the runtime one plus the OIDC issuer it accepts tokens from, when there is one.

    Issuer, audience, JWKS URL and claim name are public values, not secrets."""
    environment = runtime_environment(config)
    if config.oidc is not None:
        environment |= {
            "JOBS_OIDC_ISSUER": config.oidc.issuer,
            "JOBS_OIDC_AUDIENCE": config.oidc.audience,
            "JOBS_OIDC_JWKS_URL": config.oidc.jwks_url,
            "JOBS_OIDC_TENANT_CLAIM": config.oidc.tenant_claim,
        }
    return environment


def service_name(config: EnvironmentConfig) -> str:
    return f"job-tickets-{config.name}"


def grant_xray_write(grantee: iam.IGrantable) -> iam.Grant:
    """What the X-Ray daemon sidecar does with the task role; X-Ray has no resource-level permissions."""
    return iam.Grant.add_to_principal(
        grantee=grantee,
        actions=[
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
            "xray:GetSamplingStatisticSummaries",
        ],
        resource_arns=["*"],
    )
