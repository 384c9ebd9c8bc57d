"""The job resource and the other shapes of the HTTP contract, parsed leniently: a field the service does not send
(an older service) is None or empty, and a field this client does not know yet stays available in `raw`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

# The contract's states; a status this client does not know is kept as the string the service sent.
PENDING = "PENDING"
PROCESSING = "PROCESSING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
FAILED_FINAL = "FAILED_FINAL"
CANCELED = "CANCELED"
TERMINAL_STATUSES = frozenset({SUCCEEDED, FAILED_FINAL, CANCELED})

Priority = Literal["low", "normal", "high"]


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time as an aware datetime (None when absent or not a time)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC; a naive one is refused (its zone would be a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"run_at: needs a timezone, got naive {moment.isoformat()}")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@dataclass(frozen=True)
class Progress:
    """What the job's handler last reported: `fraction` 0.0-1.0 and an optional message."""

    fraction: float
    message: str | None
    updated_at: datetime | None

    @classmethod
    def from_dict(cls, data: Any) -> Progress | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("fraction"), int | float):
            return None
        message = data.get("message")
        return cls(
            fraction=min(1.0, max(0.0, float(data["fraction"]))),
            message=message if isinstance(message, str) else None,
            updated_at=parse_time(data.get("updatedAt")),
        )


@dataclass(frozen=True)
class Callback:
    """The job's webhook delivery: `state` is "pending", "delivered" or "failed"."""

    url: str
    state: str
    attempts: int
    last_status_code: int | None

    @classmethod
    def from_dict(cls, data: Any) -> Callback | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("url"), str):
            return None
        last = data.get("lastStatusCode")
        return cls(
            url=data["url"],
            state=str(data.get("state", "")),
            attempts=_int(data.get("attempts")),
            last_status_code=last if isinstance(last, int) else None,
        )


@dataclass(frozen=True)
class ResultRef:
    """A result too large for the job record, stored apart: `size` bytes of canonical JSON with this sha256.
    `fetch_result` downloads and checks it."""

    uri: str
    size: int
    sha256: str

    @classmethod
    def from_dict(cls, data: Any) -> ResultRef | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("uri"), str):
            return None
        return cls(uri=data["uri"], size=_int(data.get("size")), sha256=str(data.get("sha256", "")).lower())


@dataclass(frozen=True)
class JobFailure:
    """The job's `error`: why its last attempt failed."""

    code: str
    message: str
    permanent: bool

    @classmethod
    def from_dict(cls, data: Any) -> JobFailure | None:
        if not isinstance(data, Mapping):
            return None
        return cls(
            code=str(data.get("code", "")), message=str(data.get("message", "")), permanent=bool(data.get("permanent"))
        )


@dataclass(frozen=True)
class Job:
    """The job resource. `raw` is the JSON object as the service sent it, unknown fields included."""

    job_id: str
    status: str
    job_type: str
    priority: str
    params: dict[str, Any]
    metadata: dict[str, Any]
    attempts: int
    result: dict[str, Any] | None
    error: JobFailure | None
    # A large result: `result` is None, `result_ref` says where it is, `result_url` (from `get` only) downloads it.
    result_ref: ResultRef | None
    result_url: str | None
    created_at: datetime | None
    updated_at: datetime | None
    trace_id: str | None
    tenant: str | None
    transitions: dict[str, datetime]
    cancel_requested: bool
    progress: Progress | None
    run_at: datetime | None
    callback: Callback | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        job_id = data.get("jobId")
        if not isinstance(job_id, str):
            raise ValueError("not a job: no jobId")
        transitions = {
            str(name): moment
            for name, value in _mapping(data.get("transitions")).items()
            if (moment := parse_time(value)) is not None
        }
        result = data.get("result")
        trace_id = data.get("traceId")
        tenant = data.get("tenant")
        result_url = data.get("resultUrl")
        return cls(
            job_id=job_id,
            status=str(data.get("status", "")),
            job_type=str(data.get("jobType", "")),
            priority=str(data.get("priority", "normal")),
            params=dict(_mapping(data.get("params"))),
            metadata=dict(_mapping(data.get("metadata"))),
            attempts=_int(data.get("attempts")),
            result=dict(result) if isinstance(result, Mapping) else None,
            error=JobFailure.from_dict(data.get("error")),
            result_ref=ResultRef.from_dict(data.get("resultRef")),
            result_url=result_url if isinstance(result_url, str) and result_url else None,
            created_at=parse_time(data.get("createdAt")),
            updated_at=parse_time(data.get("updatedAt")),
            trace_id=trace_id if isinstance(trace_id, str) else None,
            tenant=tenant if isinstance(tenant, str) else None,
            transitions=transitions,
            cancel_requested=bool(data.get("cancelRequested", False)),
            progress=Progress.from_dict(data.get("progress")),
            run_at=parse_time(data.get("runAt")),
            callback=Callback.from_dict(data.get("callback")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class JobRequest:
    """One job to submit, as `submit` takes it; `submit_many` takes a list of these."""

    type: str
    params: Mapping[str, Any]
    priority: Priority | None = None
    metadata: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    run_at: datetime | str | None = None
    delay_seconds: int | None = None
    callback_url: str | None = None

    def body(self) -> dict[str, Any]:
        """The submit body of the contract (without the idempotency key, which travels separately)."""
        if self.run_at is not None and self.delay_seconds is not None:
            raise ValueError("run_at and delay_seconds: give one, not both")
        body: dict[str, Any] = {"type": self.type, "params": dict(self.params)}
        if self.priority is not None:
            body["priority"] = self.priority
        if self.metadata is not None:
            body["metadata"] = dict(self.metadata)
        if self.run_at is not None:
            body["runAt"] = format_time(self.run_at) if isinstance(self.run_at, datetime) else self.run_at
        if self.delay_seconds is not None:
            body["delaySeconds"] = self.delay_seconds
        if self.callback_url is not None:
            body["callbackUrl"] = self.callback_url
        return body
