"""The one place that builds boto3 clients: once per process and service, with timeouts, standard retries,
a connection pool sized for the thread pools, and AWS request counting installed."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from runtime.observability import aws_calls
from runtime.settings import Settings

CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
MAX_ATTEMPTS = 3  # standard mode: the first try plus two retries with jittered backoff
MAX_POOL_CONNECTIONS = 64  # above the API's thread pool (40) and the worker's concurrency default (16)

_lock = threading.Lock()
_clients: dict[tuple[str, str, str | None], Any] = {}


def client_config(*, read_timeout_s: float = READ_TIMEOUT_S, max_attempts: int = MAX_ATTEMPTS) -> Config:
    return Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=read_timeout_s,
        retries={"mode": "standard", "max_attempts": max_attempts},
        max_pool_connections=MAX_POOL_CONNECTIONS,
        tcp_keepalive=True,
    )


def build_client(service: str, *, region: str, endpoint_url: str | None, config: Config | None = None) -> Any:
    """A new client (counted by aws_calls). Prefer `client()`, which builds each one once per process."""
    # A session per client: boto3's default session is not thread-safe while it creates clients.
    session = boto3.session.Session(region_name=region)
    built = session.client(service, endpoint_url=endpoint_url, config=config or client_config())  # type: ignore[call-overload]
    aws_calls.install(built)
    return built


def client(service: str, settings: Settings) -> Any:
    """The process-wide client of `service` for the settings' region and endpoint."""
    key = (service, settings.region, settings.endpoint_url)
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(key)
        if found is None:
            # SQS long polls hold a connection for up to 20 s: the read timeout must outlast them.
            config = client_config(read_timeout_s=READ_TIMEOUT_S + 20) if service == "sqs" else None
            found = build_client(service, region=settings.region, endpoint_url=settings.endpoint_url, config=config)
            _clients[key] = found
        return found


@dataclass(frozen=True)
class AwsClients:
    dynamodb: Any
    sqs: Any
    s3: Any


def clients(settings: Settings) -> AwsClients:
    return AwsClients(dynamodb=client("dynamodb", settings), sqs=client("sqs", settings), s3=client("s3", settings))
