"""What every runtime process on AWS is told through its environment, and the grants all of them need."""

from __future__ import annotations

import json

from aws_cdk import aws_iam as iam

from stacks.config import EnvironmentConfig

# The AWS Distro for OpenTelemetry collector, beside each ECS task's app container: OTLP/HTTP in, X-Ray out.
ADOT_COLLECTOR_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector:v0.48.0"
OTLP_HTTP_PORT = 4318
# Span attributes the collector makes indexed X-Ray annotations (searchable: annotation.jobId = "...").
XRAY_INDEXED_ATTRIBUTES = ("jobId", "jobType", "traceId")


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


def otlp_endpoint() -> str:
    """Where the app container sends spans (OTEL_EXPORTER_OTLP_ENDPOINT): the collector in the same task."""
    return f"http://127.0.0.1:{OTLP_HTTP_PORT}"


def collector_config(region: str) -> str:
    """The collector's whole configuration (its AOT_CONFIG_CONTENT): traces only, OTLP/HTTP on loopback (the
    task's containers share it; nothing else can reach it), batched to X-Ray in the stack's region. JSON is YAML."""
    return json.dumps(
        {
            "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{OTLP_HTTP_PORT}"}}}},
            "processors": {"batch/traces": {"timeout": "1s", "send_batch_size": 50}},
            "exporters": {"awsxray": {"region": region, "indexed_attributes": list(XRAY_INDEXED_ATTRIBUTES)}},
            "service": {
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "processors": ["batch/traces"], "exporters": ["awsxray"]}
                }
            },
        },
        separators=(",", ":"),
    )


def grant_xray_write(grantee: iam.IGrantable) -> iam.Grant:
    """What the collector sidecar's awsxray exporter does with the task role (the X-Ray daemon's grant: sending
    segments, and the sampling calls); X-Ray has no resource-level permissions."""
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
