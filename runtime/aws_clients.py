"""The one place that builds boto3 clients: once per process and service, with timeouts, standard retries,
a connection pool sized for the thread pools, and AWS request counting installed."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.config import Config

from runtime.observability import aws_calls
from runtime.settings import DEFAULT_AWS_READ_TIMEOUT_S

if TYPE_CHECKING:
    # boto3-stubs is a dev dependency: the types exist for mypy only, the runtime images do without.
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient

    # Settings imports this module (its SSM source builds a client here): a type-only import, no cycle.
    from runtime.settings import Settings

Service = Literal["dynamodb", "sqs", "s3", "ssm"]

CONNECT_TIMEOUT_S = 2.0
# The read timeout of clients built before settings exist (SSM) and Settings.aws_read_timeout_s's default.
READ_TIMEOUT_S = DEFAULT_AWS_READ_TIMEOUT_S
MAX_ATTEMPTS = 3  # standard mode: the first try plus two retries with jittered backoff
MAX_POOL_CONNECTIONS = 64  # above the API's thread pool (40) and the worker's concurrency default (16)

_lock = threading.Lock()
_clients: dict[tuple[str, str, str | None, str], Any] = {}


def client_config(
    *,
    read_timeout_s: float = READ_TIMEOUT_S,
    max_attempts: int = MAX_ATTEMPTS,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> Config:
    return Config(
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        # total_max_attempts counts the first try; botocore's `max_attempts` key would count retries only (one
        # try more than meant, which the API's deadline check would not see).
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=MAX_POOL_CONNECTIONS,
        tcp_keepalive=True,
    )


@overload
def build_client(
    service: Literal["dynamodb"], *, region: str, endpoint_url: str | None, config: Config | None = None
) -> DynamoDBClient: ...
@overload
def build_client(
    service: Literal["sqs"], *, region: str, endpoint_url: str | None, config: Config | None = None
) -> SQSClient: ...
@overload
def build_client(
    service: Literal["s3"], *, region: str, endpoint_url: str | None, config: Config | None = None
) -> S3Client: ...
@overload
def build_client(
    service: Literal["ssm"], *, region: str, endpoint_url: str | None, config: Config | None = None
) -> SSMClient: ...
def build_client(service: Service, *, region: str, endpoint_url: str | None, config: Config | None = None) -> Any:
    """A new client (counted by aws_calls). Prefer `client()`, which builds each one once per process."""
    # A session per client: boto3's default session is not thread-safe while it creates clients.
    session = boto3.session.Session(region_name=region)
    built = session.client(service, endpoint_url=endpoint_url, config=config or client_config())
    aws_calls.install(built)
    return built


@overload
def client(service: Literal["dynamodb"], settings: Settings) -> DynamoDBClient: ...
@overload
def client(service: Literal["sqs"], settings: Settings) -> SQSClient: ...
@overload
def client(service: Literal["s3"], settings: Settings) -> S3Client: ...
def client(service: Literal["dynamodb", "sqs", "s3"], settings: Settings) -> Any:
    """The process-wide client of `service` for the settings' region and endpoint."""
    # SQS long polls hold a connection for up to 20 s: the read timeout must outlast them.
    read_timeout_s = settings.aws_read_timeout_s + (20 if service == "sqs" else 0)
    return _cached(service, settings, f"default:{read_timeout_s}", client_config(read_timeout_s=read_timeout_s))


@overload
def api_client(service: Literal["dynamodb"], settings: Settings) -> DynamoDBClient: ...
@overload
def api_client(service: Literal["sqs"], settings: Settings) -> SQSClient: ...
def api_client(service: Literal["dynamodb", "sqs"], settings: Settings) -> Any:
    """The process-wide client of `service` for the API's requests: its attempts, timeouts included, fit in the
    request deadline (Settings.api_aws_*), so that a stalled store frees the request's thread soon after its 503."""
    config = client_config(
        connect_timeout_s=settings.api_aws_connect_timeout_s,
        read_timeout_s=settings.api_aws_read_timeout_s,
        max_attempts=settings.api_aws_max_attempts,
    )
    limits = (settings.api_aws_connect_timeout_s, settings.api_aws_read_timeout_s, settings.api_aws_max_attempts)
    profile = "api:" + ":".join(str(limit) for limit in limits)
    return _cached(service, settings, profile, config)


def _cached(service: Service, settings: Settings, profile: str, config: Config | None) -> Any:
    key = (service, settings.region, settings.endpoint_url, profile)
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(key)
        if found is None:
            found = build_client(service, region=settings.region, endpoint_url=settings.endpoint_url, config=config)
            _clients[key] = found
        return found


def presigning_s3_client(settings: Settings) -> S3Client:
    """The process-wide S3 client that signs download links (it sends no request). Signature V4: botocore would
    sign with V2 by default, which role session credentials cannot use."""
    presigning: S3Client = _cached("s3", settings, "presign", client_config().merge(Config(signature_version="s3v4")))
    return presigning


def ssm_client(*, region: str, endpoint_url: str | None) -> SSMClient:
    """The client the settings' SSM source reads with. It runs before Settings exist (it helps build them),
    once per process, so it takes the region and endpoint itself and is not kept."""
    return build_client("ssm", region=region, endpoint_url=endpoint_url)


@dataclass(frozen=True)
class AwsClients:
    dynamodb: DynamoDBClient
    sqs: SQSClient
    s3: S3Client


def clients(settings: Settings) -> AwsClients:
    return AwsClients(dynamodb=client("dynamodb", settings), sqs=client("sqs", settings), s3=client("s3", settings))
