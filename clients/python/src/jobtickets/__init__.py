"""A typed client (sync and async) for the job tickets HTTP API, the `jobtickets` CLI and webhook verification."""

from __future__ import annotations

from jobtickets._core import BatchItemResult
from jobtickets.aio import AsyncJobTicketsClient
from jobtickets.client import JobTicketsClient
from jobtickets.errors import (
    Conflict,
    ConnectionFailed,
    Forbidden,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidCursor,
    InvalidSignature,
    JobNotCancelable,
    JobNotFound,
    JobNotRetryable,
    JobTicketsError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    UnknownJobType,
    ValidationFailed,
    WaitTimeout,
)
from jobtickets.models import (
    CANCELED,
    FAILED,
    FAILED_FINAL,
    PENDING,
    PROCESSING,
    SUCCEEDED,
    TERMINAL_STATUSES,
    Callback,
    Job,
    JobFailure,
    JobRequest,
    Progress,
    ResultRef,
)
from jobtickets.webhooks import sign, verify_signature

__version__ = "0.1.0"

__all__ = [
    "CANCELED",
    "FAILED",
    "FAILED_FINAL",
    "PENDING",
    "PROCESSING",
    "SUCCEEDED",
    "TERMINAL_STATUSES",
    "AsyncJobTicketsClient",
    "BatchItemResult",
    "Callback",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyReused",
    "InvalidCursor",
    "InvalidSignature",
    "Job",
    "JobFailure",
    "JobNotCancelable",
    "JobNotFound",
    "JobNotRetryable",
    "JobRequest",
    "JobTicketsClient",
    "JobTicketsError",
    "NotFound",
    "PayloadTooLarge",
    "Progress",
    "RateLimited",
    "ResultRef",
    "ServerError",
    "ServiceUnavailable",
    "Unauthorized",
    "UnknownJobType",
    "ValidationFailed",
    "WaitTimeout",
    "sign",
    "verify_signature",
]
