"""Callbacks (webhooks): a job's callback state, the event a terminal job sends, its signature and the retry
schedule. No I/O here: addresses, HTTP and queues live in runtime/callbacks/."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from runtime.domain.times import iso

if TYPE_CHECKING:
    from runtime.domain.job import Job, JobStatus

# Fixed forever: event ids must stay the same across releases (a receiver deduplicates on them).
EVENT_NAMESPACE = uuid.UUID("0d6f3c1e-5a43-4f4e-9a55-7c1f0b8e2a61")
EVENT_ID_HEADER = "Job-Tickets-Event-Id"
SIGNATURE_HEADER = "Job-Tickets-Signature"
SIGNATURE_VERSION = "v1"
# The most a callbackUrl may hold (it is stored with the job and fingerprinted).
MAX_CALLBACK_URL_CHARS = 2048


# By terminal status (the values of runtime.domain.job.JobStatus, which imports this module).
_EVENT_NAMES = {"SUCCEEDED": "job.succeeded", "FAILED_FINAL": "job.failed", "CANCELED": "job.canceled"}


class CallbackState(StrEnum):
    PENDING = "pending"  # not delivered yet (the job is not terminal, or deliveries are still being tried)
    DELIVERED = "delivered"  # a delivery got a 2xx answer
    FAILED = "failed"  # every delivery failed for the whole retry window


@dataclass(frozen=True)
class Callback:
    """Where a job's terminal event goes and how its delivery went (`attempts` counts POSTs of the current event)."""

    url: str
    state: CallbackState = CallbackState.PENDING
    attempts: int = 0
    last_status_code: int | None = None  # None: no answer yet, or the last attempt got none


def event_name(status: JobStatus) -> str:
    """job.succeeded | job.failed | job.canceled for a terminal status."""
    try:
        return _EVENT_NAMES[status.value]
    except KeyError:
        raise ValueError(f"no callback event for status {status}") from None


def event_id_for(job_id: str, status: JobStatus, entered_at: datetime) -> str:
    """Stable for one terminal transition of a job (its status and the moment it was entered, as stored), so every
    redelivery of that event carries the same id; a manual retry that ends terminal again makes a new event."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{job_id}\n{status.value}\n{iso(entered_at)}"))


def event_id(job: Job) -> str:
    """The id of the event of the job's current (terminal) status."""
    entered = job.transitions.get(job.status.value)
    if entered is None:
        raise ValueError(f"job {job.job_id} has no transition time for {job.status}")
    return event_id_for(job.job_id, job.status, entered)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of "<timestamp>.<body>" under the tenant's secret."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The Job-Tickets-Signature value: t=<unix seconds>,v1=<hex>."""
    return f"t={timestamp},{SIGNATURE_VERSION}={signature(secret, timestamp, body)}"


def verify_signature(secret: str, header: str, body: bytes, *, now_s: float, tolerance_s: int = 300) -> bool:
    """What a receiver does: the header's v1 matches the body under `secret` and its t is within `tolerance_s`
    of `now_s` (a replayed old delivery is refused). Compared in constant time."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
        given = parts[SIGNATURE_VERSION]
    except (KeyError, ValueError):
        return False
    if abs(now_s - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(given, signature(secret, timestamp, body))


@dataclass(frozen=True)
class RetrySchedule:
    """Exponential backoff of failed deliveries: base_s * 2^(n-1) after the n-th failed attempt, capped at max_s,
    for as long as the first attempt is less than window_s ago. With 15 s, 3600 s and 24 h: retries after 15 s,
    30 s, 1 min, ... 32 min, then hourly, ~31 attempts over a bit more than a day."""

    base_s: int
    max_s: int
    window_s: int

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.max_s:
            raise ValueError(f"callback retry base {self.base_s} must be positive and at most the cap {self.max_s}")

    def delay_s(self, failed_attempts: int) -> int:
        if failed_attempts < 1:
            raise ValueError(f"failed attempts must be at least 1, got {failed_attempts}")
        return int(min(self.max_s, self.base_s * 2 ** min(failed_attempts - 1, 40)))

    def gives_up(self, *, first_attempt_s: float, now_s: float) -> bool:
        """True when a failed attempt at `now_s` is the last one: the window since the first attempt is over."""
        return now_s - first_attempt_s >= self.window_s

    def attempts_within_window(self) -> int:
        """How many attempts the schedule makes when every one fails (documentation and tests)."""
        elapsed, attempts = 0, 1
        while elapsed < self.window_s:
            elapsed += self.delay_s(attempts)
            attempts += 1
        return attempts
