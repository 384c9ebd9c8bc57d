"""The one settings object, parsed once per process from the environment (prefix JOBS_) and,
when JOBS_SSM_PATH is set, from the SSM parameters under that path (environment wins)."""

from __future__ import annotations

import functools
import math
import os
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from runtime.domain.job import Priority
from runtime.domain.progress import PROGRESS_INTERVAL_S
from runtime.domain.schedule import SQS_MAX_DELAY_S
from runtime.observability.names import METRICS_NAMESPACE

# The worker renews the leases of its running jobs at least this often (a whole fraction of the heartbeat
# interval), and each renewal reads the job's cancel flag back: see Settings.cancel_notice_bound_s.
CANCEL_CHECK_MAX_S = 6.0

DEFAULT_REGION = "us-east-1"
DEFAULT_AWS_READ_TIMEOUT_S = 5.0
LOCAL_ENVIRONMENT = "local"
# Signs list cursors in the local environment only (Settings.cursor_key); everywhere else a secret must be set.
LOCAL_CURSOR_SECRET = b"local-cursor-secret-not-for-aws"


class SettingsError(Exception):
    """Missing or bad configuration; the message names every bad setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBS_", extra="ignore", frozen=True)

    environment: str = LOCAL_ENVIRONMENT
    table_name: str = Field(min_length=1)
    queue_url: str = Field(min_length=1)  # the normal-priority queue
    # The other priorities' queues (runtime/domain/priorities.py). Unset: that priority shares the normal queue,
    # with no ordering between the two (a single-queue deployment, as in some tests).
    high_priority_queue_url: str | None = Field(default=None, min_length=1)
    low_priority_queue_url: str | None = Field(default=None, min_length=1)
    dead_letter_queue_url: str = Field(min_length=1)
    documents_bucket: str = Field(min_length=1)
    ssm_path: str | None = None

    # AWS_REGION / AWS_ENDPOINT_URL are the SDK's own variables; read them here so that the value used
    # is visible in one place. No endpoint means the real AWS endpoints.
    region: str = Field(default=DEFAULT_REGION, validation_alias="AWS_REGION")
    endpoint_url: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL")

    # How long the AWS clients wait for an answer (runtime/aws_clients.py); an emulator slow with large items (the
    # memory benchmark) may need longer.
    aws_read_timeout_s: float = Field(default=DEFAULT_AWS_READ_TIMEOUT_S, gt=0, le=300)

    retention_days: int = Field(default=30, ge=1, le=3650)
    idempotency_ttl_s: int = Field(default=86_400, ge=60)
    max_body_bytes: int = Field(default=65_536, ge=1024, le=350_000)
    # POST /api/v1/jobs/batch carries up to 100 submit bodies; each one is still held to max_body_bytes.
    max_batch_body_bytes: int = Field(default=1_048_576, ge=1024, le=6_000_000)
    # Conditional puts of one batch run this many at once (DynamoDB BatchWriteItem takes no conditions).
    batch_write_concurrency: int = Field(default=8, ge=1, le=16)
    # How long after its creation a PENDING job's submit may still be in progress (409 window).
    submit_in_flight_s: float = Field(default=5.0, gt=0)
    # The API coalesces concurrent submits into SendMessageBatch, waiting at most this long for company
    # after the first message; 0 sends each message on its own.
    send_linger_s: float = Field(default=0.005, ge=0, le=1.0)
    # Slow clients (python -m runtime.api): a request's headers must be in within http_header_timeout_s of the
    # connection opening or of the request's first byte, its body within http_body_timeout_s after that. An idle
    # keep-alive connection closes after http_keep_alive_s: longer than the ALB's 60 s idle timeout, so that the
    # ALB never sends a request on a connection the API is closing (a 502).
    http_header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    http_body_timeout_s: float = Field(default=30.0, gt=0, le=600)
    http_keep_alive_s: int = Field(default=65, ge=1, le=3600)
    # Every /api/ request answers within request_deadline_s once its body is in (batch submits within
    # batch_request_deadline_s, and start no write in its last batch_write_cutoff_s): past it, `503` with
    # Retry-After. At most max_in_flight_requests are handled at once per process; the excess is answered `503` with
    # Retry-After at once instead of waiting for a thread. The API's AWS calls give up an attempt after
    # api_aws_connect_timeout_s / api_aws_read_timeout_s and make at most api_aws_max_attempts, all of which must
    # fit in request_deadline_s. /readyz answers within readiness_timeout_s.
    request_deadline_s: float = Field(default=5.0, gt=0, le=60)
    batch_request_deadline_s: float = Field(default=20.0, gt=0, le=120)
    max_in_flight_requests: int = Field(default=64, ge=1, le=4096)
    api_aws_connect_timeout_s: float = Field(default=1.0, gt=0, le=30)
    api_aws_read_timeout_s: float = Field(default=1.5, gt=0, le=60)
    api_aws_max_attempts: int = Field(default=2, ge=1, le=10)
    readiness_timeout_s: float = Field(default=1.5, gt=0, lt=2)

    # How long the download link of a result stored apart (`resultUrl` of GET /api/v1/jobs/{jobId}) works.
    result_url_ttl_s: int = Field(default=300, ge=30, le=3600)

    worker_concurrency: int = Field(default=16, ge=1, le=256)
    visibility_timeout_s: int = Field(default=60, ge=2, le=43_200)
    receive_wait_s: int = Field(default=20, ge=0, le=20)
    max_attempts: int = Field(default=3, ge=1, le=20)
    backoff_base_s: float = Field(default=2.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    shutdown_deadline_s: float = Field(default=25.0, gt=0)
    # Deletes wait this long for company (DeleteMessageBatch of up to 10). The job's outcome is already
    # recorded, so a late delete risks at most a redelivery that finds the job terminal and is deleted.
    delete_linger_s: float = Field(default=0.5, ge=0)

    # A job from a fresh message runs unclaimed (its record stays PENDING) and is claimed only once it has run this
    # long (or has progress to write); one that ends sooner is recorded by its outcome's write alone
    # (runtime/domain/lazy_claim.py). 0: every job is claimed before it runs.
    lazy_claim_after_s: float = Field(default=1.0, ge=0, le=60)
    # A running job's reported progress is written at most once per job this often (the contract's bound is 2 s,
    # so never less); the last value is written with the job's outcome whatever the interval.
    progress_interval_s: float = Field(default=PROGRESS_INTERVAL_S, ge=PROGRESS_INTERVAL_S, le=300)

    # No job lost: a PENDING job older than this is published again; the sweep runs this often.
    republish_after_s: int = Field(default=60, ge=1)
    republish_interval_s: int = Field(default=15, ge=1)
    # ...but while the job queues hold visible messages, only after this long (runtime/worker/republisher.py says
    # why): a backlog is the likely reason a job waits, and a second message each would only lengthen it.
    republish_backlog_after_s: int = Field(default=900, ge=1)
    # A manual retry of a PENDING job publishes it again only when its last publish is older than this: a younger
    # message is likely still in the queue, and concurrent retries must not each add one.
    retry_republish_after_s: int = Field(default=10, ge=1)
    # Scheduled jobs due within this many seconds are sent with an SQS message delay (DelaySeconds, at most 900);
    # later ones are released by the republisher once inside it (runtime/domain/schedule.py). Tests shorten it.
    schedule_delay_window_s: int = Field(default=SQS_MAX_DELAY_S, ge=1, le=SQS_MAX_DELAY_S)

    # Callbacks (runtime/callbacks): the queue of deliveries to make (unset: submits with a callbackUrl are refused),
    # the retry schedule of failed deliveries (runtime.domain.callbacks.RetrySchedule), the whole time one POST may
    # take, and whether http URLs on loopback pass the SSRF check (the local environment only).
    callback_queue_url: str | None = Field(default=None, min_length=1)
    callback_retry_base_s: int = Field(default=15, ge=1, le=30)
    callback_retry_max_s: int = Field(default=3600, ge=1, le=86_400)
    callback_retry_window_s: int = Field(default=86_400, ge=1)
    callback_timeout_s: float = Field(default=5.0, gt=0, le=5.0)
    callback_allow_loopback: bool = False

    # ECS sets ECS_AGENT_URI in every task: the container agent's endpoint, where the worker sets its task's
    # scale-in protection. Unset (local, k8s, tests) means the worker makes no protection calls at all.
    ecs_agent_uri: str | None = Field(default=None, validation_alias="ECS_AGENT_URI")

    @field_validator("ecs_agent_uri", "otlp_endpoint")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http url: {value!r}")
        return value.rstrip("/")

    # -- who is calling (runtime/auth): API keys in the access table, OIDC access tokens when an issuer is set.
    access_table_name: str = Field(min_length=1)
    # A found API key is trusted from memory this long: a revoked key stops working within this bound.
    api_key_cache_ttl_s: float = Field(default=30.0, gt=0, le=60)
    # An unknown key id is remembered this long, so guessed ids do not cost a table read each.
    api_key_negative_cache_ttl_s: float = Field(default=5.0, gt=0, le=60)
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_tenant_claim: str = Field(default="tenant", min_length=1)
    # A token with an unknown key id refetches the JWKS at most this often (key rotation, without letting
    # callers make us hammer the identity provider).
    oidc_jwks_refresh_cooldown_s: float = Field(default=30.0, ge=0, le=3600)

    # The HMAC key of list cursors (GET /api/v1/jobs), at least 16 characters: JOBS_CURSOR_SECRET or, in AWS, a
    # SecureString at <ssm path>/cursor-secret. Only the local environment may leave it unset (a fixed key: local
    # cursors are not secrets); elsewhere the API refuses to start without it.
    cursor_secret: SecretStr | None = None

    tracing_enabled: bool = False
    # Where spans go over OTLP/HTTP (base URL; /v1/traces is appended), read from OpenTelemetry's own variable.
    # Unset: spans are made and propagated but not exported. The ECS tasks point it at their ADOT collector.
    otlp_endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    log_level: str = "INFO"
    metrics_namespace: str = METRICS_NAMESPACE
    service_name: str = "job-tickets"
    # Where the AWS request counts are written as JSON (the cost benchmark); `{pid}` becomes the process id.
    aws_calls_file: str | None = None

    # `python -m runtime.api` listens here; loopback unless told otherwise (containers set 0.0.0.0).
    api_host: str = Field(default="127.0.0.1", min_length=1)
    api_port: int = Field(default=8080, ge=1, le=65_535)
    # Comma-separated modules the worker imports at start, each registering job types with @job_type
    # (tests and benchmarks add their own types this way; production images need none).
    worker_plugins: Annotated[tuple[str, ...], NoDecode] = ()

    @property
    def priority_queue_urls(self) -> dict[Priority, str]:
        """Each priority with a queue of its own -> that queue's URL; `normal` always."""
        urls = {
            Priority.HIGH: self.high_priority_queue_url,
            Priority.NORMAL: self.queue_url,
            Priority.LOW: self.low_priority_queue_url,
        }
        return {priority: url for priority, url in urls.items() if url}

    @property
    def heartbeat_interval_s(self) -> float:
        return self.visibility_timeout_s / 3

    @property
    def cancel_check_interval_s(self) -> float:
        """How often running jobs' leases are renewed: the heartbeat interval split into equal beats of at most
        CANCEL_CHECK_MAX_S (20 s -> 4 beats of 5 s by default)."""
        return self.heartbeat_interval_s / math.ceil(self.heartbeat_interval_s / CANCEL_CHECK_MAX_S)

    @property
    def cancel_notice_bound_s(self) -> float:
        """The documented bound: a running job's worker sees a cancel request within this (10 s by default,
        never more than 12 s) plus the time the heartbeat's own requests take. A lease is renewed once it is a
        whole check interval old, so the renewal after a request comes at most two intervals later."""
        return 2 * self.cancel_check_interval_s

    @property
    def republish_bound_s(self) -> int:
        """The documented bound: a PENDING job whose message never left is published again within this."""
        return self.republish_after_s + self.republish_interval_s

    @property
    def api_aws_call_bound_s(self) -> float:
        """The longest one AWS call of the API can take: every attempt given up at its connect and read timeouts."""
        return self.api_aws_max_attempts * (self.api_aws_connect_timeout_s + self.api_aws_read_timeout_s)

    @property
    def batch_write_cutoff_s(self) -> float:
        """How long before its deadline a batch submit stops starting writes: one AWS call's bound for the writes
        already under way to end, one for the created jobs' messages to go out."""
        return 2 * self.api_aws_call_bound_s

    @field_validator("worker_plugins", mode="before")
    @classmethod
    def _split_plugins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    def cursor_key(self) -> bytes:
        """The cursor HMAC key; SettingsError outside the local environment when JOBS_CURSOR_SECRET is unset."""
        if self.cursor_secret is not None:
            return self.cursor_secret.get_secret_value().encode("utf-8")
        if self.environment == LOCAL_ENVIRONMENT:
            return LOCAL_CURSOR_SECRET
        raise SettingsError(
            f"JOBS_CURSOR_SECRET (or <ssm path>/cursor-secret) must be set in environment "
            f"{self.environment!r}: it signs the list cursors"
        )

    @field_validator("cursor_secret")
    @classmethod
    def _check_cursor_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("cursor_secret must be at least 16 characters")
        return value

    @property
    def oidc_enabled(self) -> bool:
        return self.oidc_issuer is not None

    @field_validator("oidc_issuer", "oidc_audience", "oidc_jwks_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # An environment that does not use OIDC may still pass the variables, empty.
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError(f"backoff_max_s {self.backoff_max_s} is below backoff_base_s {self.backoff_base_s}")
        if self.republish_bound_s >= self.schedule_delay_window_s:
            # The republisher releases a held scheduled job within the bound after it enters the window: a bound
            # as long as the window would release it after its runAt.
            raise ValueError(
                f"republish_after_s + republish_interval_s ({self.republish_bound_s}) must be below "
                f"schedule_delay_window_s ({self.schedule_delay_window_s})"
            )
        if self.lazy_claim_after_s >= self.visibility_timeout_s:
            # An unclaimed job has no lease, only its message's visibility: it is claimed (leased) before the first
            # visibility timeout runs out, so a missed heartbeat cannot hand it to a second worker unclaimed.
            raise ValueError(
                f"lazy_claim_after_s ({self.lazy_claim_after_s:g}) must be below visibility_timeout_s "
                f"({self.visibility_timeout_s})"
            )
        aws_call_s = self.api_aws_call_bound_s
        if aws_call_s > self.request_deadline_s:
            raise ValueError(
                f"api_aws_max_attempts x (api_aws_connect_timeout_s + api_aws_read_timeout_s) = {aws_call_s:g} s "
                f"does not fit in request_deadline_s {self.request_deadline_s:g} s"
            )
        if self.batch_write_cutoff_s >= self.batch_request_deadline_s:
            # A batch stops starting writes this long before its deadline: at or past it, no job would ever start.
            raise ValueError(
                f"batch_request_deadline_s {self.batch_request_deadline_s:g} s must be above twice the api's aws call "
                f"bound ({self.batch_write_cutoff_s:g} s: the writes under way, then the send of their messages)"
            )
        oidc = {
            "JOBS_OIDC_ISSUER": self.oidc_issuer,
            "JOBS_OIDC_AUDIENCE": self.oidc_audience,
            "JOBS_OIDC_JWKS_URL": self.oidc_jwks_url,
        }
        if any(oidc.values()) and not all(oidc.values()):
            missing = ", ".join(name for name, value in oidc.items() if not value)
            raise ValueError(f"oidc needs issuer, audience and jwks url together; missing {missing}")
        if self.callback_retry_max_s < self.callback_retry_base_s:
            raise ValueError(
                f"callback_retry_max_s {self.callback_retry_max_s} is below callback_retry_base_s "
                f"{self.callback_retry_base_s}"
            )
        if self.callback_allow_loopback and self.environment != LOCAL_ENVIRONMENT:
            raise ValueError(f"callback_allow_loopback is for the local environment only, not {self.environment!r}")
        if self.oidc_jwks_url and not _acceptable_jwks_url(self.oidc_jwks_url):
            raise ValueError(f"oidc_jwks_url must be https (http only on loopback), got {self.oidc_jwks_url!r}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, SsmParameterSource(settings_cls)


def _acceptable_jwks_url(url: str) -> bool:
    parsed = urlsplit(url)
    return parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost"))


class SsmParameterSource(PydanticBaseSettingsSource):
    """Parameters under JOBS_SSM_PATH, named after the fields with dashes: <path>/queue-url."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._values = _read_ssm_path(os.environ.get("JOBS_SSM_PATH"))

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {name: value for name, value in self._values.items() if name in self.settings_cls.model_fields}


def _read_ssm_path(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    # Only when a path is configured: the settings module stays cheap to import (boto3 is not).
    from runtime.aws_clients import ssm_client

    prefix = path.rstrip("/") + "/"
    # The SDK's own variables, read here because Settings (which holds them) is still being built.
    client = ssm_client(
        region=os.environ.get("AWS_REGION", DEFAULT_REGION), endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None
    )
    values: dict[str, str] = {}
    try:
        for page in client.get_paginator("get_parameters_by_path").paginate(Path=prefix, WithDecryption=True):
            for parameter in page["Parameters"]:
                name = parameter["Name"][len(prefix) :].replace("-", "_")
                values[name] = parameter["Value"]
    except Exception as exc:  # any failure here is a configuration error
        raise SettingsError(f"cannot read ssm parameters under {prefix!r}: {exc}") from exc
    return values


def load_settings(**overrides: Any) -> Settings:
    """Parses the settings, turning validation errors into one readable SettingsError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            # Fields read from a variable of their own (AWS_REGION, ECS_AGENT_URI) report it by that name.
            env_name = name if name.isupper() else f"JOBS_{name.upper()}"
            problems.append(f"{env_name}: {error['msg'].lower()}")
        raise SettingsError("bad configuration: " + "; ".join(problems)) from None


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, parsed on first use."""
    return load_settings()
