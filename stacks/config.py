"""Typed per-environment configuration: the only place where local, dev, staging and prod differ."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

ApiMode = Literal["fargate", "lambda"]

# The SSM path the runtime reads (JOBS_SSM_PATH); every parameter lives under /job-tickets/<env>/.
APP_NAME = "job-tickets"


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    """The worker service and the runtime settings the queue is derived from."""

    visibility_timeout_s: int
    concurrency: int
    max_attempts: int = 3
    cpu: int = 512
    memory_mib: int = 1024
    min_capacity: int = 1
    max_capacity: int = 4
    # Messages per running task (waiting + in flight, all priority queues) that target tracking holds the service
    # at (stacks/components/worker_service.py). Twice this adds a task on the first one-minute datapoint, about
    # 2-3 minutes after a burst arrives (SQS publishes each minute's figure a minute or two late); target tracking
    # itself acts after 3 datapoints above it (about 4-5 minutes) and removes tasks after 15 below.
    backlog_per_task: int = 50
    # How long a stopping task may finish its jobs (the runtime's shutdown_deadline_s + margin).
    stop_timeout_s: int = 60

    def __post_init__(self) -> None:
        if self.min_capacity < 1:
            # The worker also runs the republisher (no job lost): at least one task must always run.
            raise ValueError(f"worker min_capacity must be >= 1, got {self.min_capacity}")
        if self.max_capacity < self.min_capacity:
            raise ValueError(f"worker max_capacity {self.max_capacity} is below min_capacity {self.min_capacity}")
        if not 2 <= self.visibility_timeout_s <= 43_200:
            raise ValueError(f"visibility_timeout_s out of range: {self.visibility_timeout_s}")


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    """How the HTTP API runs: Fargate behind an ALB, or a Lambda behind an HTTP API (Mangum)."""

    mode: ApiMode
    cpu: int = 256
    memory_mib: int = 512
    desired_count: int = 2
    max_capacity: int = 4
    lambda_memory_mib: int = 1024
    lambda_timeout_s: int = 29  # the HTTP API's integration timeout is 30 s
    throttle_rate_per_s: int = 100
    throttle_burst: int = 200
    # Fargate mode: the ALB refuses deletion until this attribute is turned off (prod).
    load_balancer_deletion_protection: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("fargate", "lambda"):
            raise ValueError(f"unknown api mode: {self.mode!r}")


@dataclass(frozen=True, kw_only=True)
class AlarmThresholds:
    """Per-environment alarm thresholds; the alarms themselves are the same everywhere."""

    oldest_message_age_s: int = 600
    api_5xx_per_5min: int = 5
    lambda_errors_per_5min: int = 1
    dlq_messages: int = 1
    # The DLQ handler drains the DLQ within seconds; a message this old means it keeps failing on it.
    dlq_oldest_message_age_s: int = 900
    # FAILED_FINAL jobs (last attempt, permanent error, dead-lettered) across job types: a bad request now and
    # then is normal, a run of them is a broken dependency or deployment.
    jobs_failed_final_per_5min: int = 10
    # The API on Fargate: unhealthy targets behind the ALB for 3 minutes, and p90 response time for 5.
    alb_unhealthy_hosts: int = 1
    api_p90_latency_s: float = 2.0
    # DynamoDB throttle events on the jobs table and its indexes, and Lambda throttles, per 5 minutes.
    dynamodb_throttles_per_5min: int = 10
    lambda_throttles_per_5min: int = 1


@dataclass(frozen=True, kw_only=True)
class DomainConfig:
    """The public name of the ALB: an existing Route 53 hosted zone (given, never looked up) and a record in it.

    The ACM certificate for `record_name` is validated through a DNS record in that zone."""

    hosted_zone_id: str
    zone_name: str
    record_name: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"Z[A-Z0-9]{1,31}", self.hosted_zone_id):
            raise ValueError(f"hosted_zone_id is not a route 53 zone id: {self.hosted_zone_id!r}")
        if self.record_name != self.zone_name and not self.record_name.endswith(f".{self.zone_name}"):
            raise ValueError(f"record_name {self.record_name!r} is not in zone {self.zone_name!r}")

    @property
    def url(self) -> str:
        return f"https://{self.record_name}"


@dataclass(frozen=True, kw_only=True)
class OidcConfig:
    """An OIDC issuer whose access tokens the API accepts (besides API keys, see `verify_at_edge`).

    The same four values reach the application (JOBS_OIDC_*), which checks signature, iss, aud, exp and nbf."""

    issuer: str
    audience: str
    jwks_url: str
    tenant_claim: str = "tenant"
    # True: the ALB (HTTPS listener) and the HTTP API (JWT authorizer) verify the token before the request reaches
    # the API, on every /api/* path; /healthz, /docs and /openapi.json stay open. API keys are opaque bearer tokens
    # that the edge cannot verify, so with this on only OIDC tokens are accepted on /api/*: API keys only work in
    # environments without an issuer, or with verify_at_edge=False (then only the application verifies).
    verify_at_edge: bool = True

    def __post_init__(self) -> None:
        for name, value in (("issuer", self.issuer), ("jwks_url", self.jwks_url)):
            if not value.startswith("https://"):
                raise ValueError(f"oidc {name} must be an https url, got {value!r}")
        if not self.audience or not self.tenant_claim:
            raise ValueError("oidc audience and tenant_claim must not be empty")


@dataclass(frozen=True, kw_only=True)
class AlarmSubscribers:
    """Who hears about an alarm: e-mail addresses subscribed to the alarm topic, and/or an existing SNS topic
    (for example one that pages the on-call person) that every alarm also notifies."""

    emails: tuple[str, ...] = ()
    topic_arn: str | None = None

    def __post_init__(self) -> None:
        for email in self.emails:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
                raise ValueError(f"alarm subscriber is not an e-mail address: {email!r}")
        if self.topic_arn is not None and not re.fullmatch(
            r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+", self.topic_arn
        ):
            raise ValueError(f"alarm topic_arn is not an sns topic arn: {self.topic_arn!r}")

    def __bool__(self) -> bool:
        return bool(self.emails or self.topic_arn)


@dataclass(frozen=True, kw_only=True)
class WafConfig:
    """The web ACL in front of the ALB."""

    # Requests per client IP in any 5-minute window before WAF blocks that IP (AWS minimum 10).
    rate_limit_per_ip_5min: int = 2000

    def __post_init__(self) -> None:
        if not 10 <= self.rate_limit_per_ip_5min <= 2_000_000_000:
            raise ValueError(f"waf rate_limit_per_ip_5min out of range: {self.rate_limit_per_ip_5min}")


@dataclass(frozen=True, kw_only=True)
class CallbackConfig:
    """The callback queue and the Lambda that delivers from it (runtime/callback_handler.py)."""

    # One delivery takes at most the runtime's callback timeout (5 s) plus a few store and queue calls.
    function_timeout_s: int = 30
    # Deliveries at once in the account: a hanging endpoint ties up at most this many, never the worker.
    reserved_concurrency: int = 10
    # Receives of one delivery message (store or queue errors) before it goes to the callback dead-letter queue.
    max_receive_count: int = 5
    # http callbacks to loopback pass the SSRF check: the local all-in-one only (tests listen on 127.0.0.1).
    allow_loopback_http: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.reserved_concurrency <= 1000:
            raise ValueError(f"callback reserved_concurrency out of range: {self.reserved_concurrency}")
        if not 10 <= self.function_timeout_s <= 900:
            raise ValueError(f"callback function_timeout_s out of range: {self.function_timeout_s}")


# Environments that face real clients: they must name a person to alarm and serve HTTPS on their own domain.
PUBLIC_ENVIRONMENTS = ("staging", "prod")


@dataclass(frozen=True, kw_only=True)
class EnvironmentConfig:
    name: str
    # The account stays open (resolved at deploy time); the region is fixed because ALB access logging
    # needs the region's load balancer log-delivery account. app.py may override both from the CLI context.
    account: str | None = None
    region: str = "us-east-1"
    retention_days: int
    # The production bound in every environment: behind a burst backlog a shorter one re-sent messages that
    # were only queued.
    republish_after_s: int = 60
    republish_interval_s: int = 15
    dlq_retention_days: int = 14
    dlq_handler_timeout_s: int = 30
    # The DLQ handler's reserved concurrency, also the maximum concurrency of its SQS event source: a flood of
    # dead letters cannot take the account's Lambda concurrency from the API function, nor the table's capacity
    # from the workers. Reserving it needs that much unreserved concurrency left in the account (AWS keeps 100).
    dlq_handler_concurrency: int = 5
    documents_noncurrent_days: int = 30
    log_retention_days: int = 30
    tracing_enabled: bool = True
    max_azs: int = 2
    nat_gateways: int = 1
    # Production data survives a stack deletion and the stacks refuse to be deleted by accident.
    protect_data: bool = False
    # Alarm notifications; required for staging and prod (see __post_init__).
    alarm_subscribers: AlarmSubscribers = field(default_factory=AlarmSubscribers)
    # The ALB's HTTPS name; required when the API runs on Fargate (staging, prod).
    domain: DomainConfig | None = None
    oidc: OidcConfig | None = None
    waf: WafConfig = field(default_factory=WafConfig)
    # Status changes published to the bus job-tickets-<env> (stacks/components/status_events.py). The local
    # all-in-one's emulator has no EventBridge Pipes: there, nothing would publish to a bus, nor read a stream.
    status_events: bool = True
    worker: WorkerConfig
    api: ApiConfig
    alarms: AlarmThresholds = field(default_factory=AlarmThresholds)
    callbacks: CallbackConfig = field(default_factory=CallbackConfig)

    def __post_init__(self) -> None:
        if not 2 <= self.dlq_handler_concurrency <= 1000:
            # The range of an SQS event source's maximum concurrency.
            raise ValueError(f"dlq_handler_concurrency must be 2-1000, got {self.dlq_handler_concurrency}")
        if self.callbacks.allow_loopback_http and self.name != "local":
            raise ValueError(f"environment {self.name!r} may not allow loopback callbacks (local only)")
        if self.name in PUBLIC_ENVIRONMENTS and not self.alarm_subscribers:
            raise ValueError(
                f"environment {self.name!r} has no alarm subscriber: set alarm_subscribers=AlarmSubscribers("
                "emails=(...,) and/or topic_arn=...) in stacks/config.py"
            )
        if self.api.mode == "fargate" and self.domain is None:
            raise ValueError(
                f"environment {self.name!r} runs the api on fargate but has no domain: set domain=DomainConfig("
                "hosted_zone_id=..., zone_name=..., record_name=...) in stacks/config.py (the alb serves https only)"
            )

    @property
    def ssm_path(self) -> str:
        return f"/{APP_NAME}/{self.name}"

    @property
    def status_event_bus_name(self) -> str:
        return f"{APP_NAME}-{self.name}"

    @property
    def stack_prefix(self) -> str:
        return f"JobTickets-{self.name}"


ENVIRONMENTS: dict[str, EnvironmentConfig] = {
    # Only for the local all-in-one on the emulator: short retention and visibility timeout; tests that need
    # a quick republish set JOBS_REPUBLISH_AFTER_S / JOBS_REPUBLISH_INTERVAL_S themselves.
    "local": EnvironmentConfig(
        name="local",
        retention_days=1,
        tracing_enabled=False,
        log_retention_days=1,
        status_events=False,
        worker=WorkerConfig(visibility_timeout_s=30, concurrency=8),
        api=ApiConfig(mode="lambda"),
        callbacks=CallbackConfig(allow_loopback_http=True),
    ),
    "dev": EnvironmentConfig(
        name="dev",
        retention_days=7,
        log_retention_days=7,
        nat_gateways=1,
        worker=WorkerConfig(visibility_timeout_s=60, concurrency=8, max_capacity=2),
        api=ApiConfig(mode="lambda"),
        alarms=AlarmThresholds(oldest_message_age_s=1800, api_5xx_per_5min=20, lambda_errors_per_5min=5),
    ),
    "staging": EnvironmentConfig(
        name="staging",
        retention_days=30,
        log_retention_days=30,
        protect_data=True,
        # EXAMPLE VALUES: set your own hosted zone, record and alarm subscribers per deployment (README).
        domain=DomainConfig(
            hosted_zone_id="Z0000000EXAMPLE0STAGING", zone_name="example.com", record_name="jobs.staging.example.com"
        ),
        alarm_subscribers=AlarmSubscribers(emails=("oncall-staging@example.com",)),
        worker=WorkerConfig(visibility_timeout_s=120, concurrency=16, max_capacity=4),
        api=ApiConfig(mode="fargate", desired_count=2, max_capacity=4),
        alarms=AlarmThresholds(oldest_message_age_s=900, api_5xx_per_5min=10, lambda_errors_per_5min=1),
    ),
    "prod": EnvironmentConfig(
        name="prod",
        retention_days=30,
        log_retention_days=90,
        protect_data=True,
        nat_gateways=2,
        # EXAMPLE VALUES: set your own hosted zone, record and alarm subscribers per deployment (README).
        domain=DomainConfig(
            hosted_zone_id="Z0000000EXAMPLE00PROD", zone_name="example.com", record_name="jobs.example.com"
        ),
        alarm_subscribers=AlarmSubscribers(emails=("oncall@example.com",)),
        worker=WorkerConfig(
            visibility_timeout_s=120,
            concurrency=16,
            cpu=1024,
            memory_mib=2048,
            min_capacity=2,
            max_capacity=10,
        ),
        api=ApiConfig(
            mode="fargate",
            cpu=512,
            memory_mib=1024,
            desired_count=2,
            max_capacity=6,
            load_balancer_deletion_protection=True,
        ),
        alarms=AlarmThresholds(oldest_message_age_s=300, api_5xx_per_5min=5, lambda_errors_per_5min=1),
    ),
}


def get_config(env_name: str) -> EnvironmentConfig:
    try:
        return ENVIRONMENTS[env_name]
    except KeyError:
        raise ValueError(f"unknown environment {env_name!r}, expected one of {sorted(ENVIRONMENTS)}") from None
