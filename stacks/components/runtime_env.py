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
