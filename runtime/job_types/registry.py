"""The job type registry: a job type is one decorated function and its params model.

class ResizeParams(BaseModel):
    source: S3Uri

@job_type("resize_image", params=ResizeParams)
def resize_image(params: ResizeParams, ctx: JobContext) -> dict[str, Any]:
    for part in parts:
        ctx.raise_if_cancelled()  # between units of work: a requested cancel ends the job CANCELED
        ...
        ctx.report_progress(done / len(parts), f"{done} of {len(parts)} parts")  # shown on the job, throttled
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from runtime.domain.ports import ObjectStore
from runtime.domain.progress import ProgressReport

P = TypeVar("P", bound=BaseModel)


class PermanentJobError(Exception):
    """Retrying cannot help (bad params, missing source object): the job goes FAILED_FINAL at once."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TransientJobError(Exception):
    """Worth retrying with backoff (a dependency timed out, throttling)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class JobCanceled(Exception):
    """A handler stops on seeing `ctx.cancelled`: the worker ends the job CANCELED (the cancel was requested)."""

    def __init__(self) -> None:
        super().__init__("the job was canceled")


class CancelSignal(threading.Event):
    """Set by the worker's heartbeat when a lease renewal finds the job's cancel requested; closed by the worker the
    moment the handler returns. A cancel noticed after that no longer counts: the handler finished first, and the
    job keeps its real outcome. Without the close, a cancel landing between the handler's return and the outcome's
    write would throw a finished result away."""

    def __init__(self) -> None:
        super().__init__()
        self._guard = threading.Lock()
        self._closed = False

    def set(self) -> None:
        with self._guard:
            if not self._closed:
                super().set()

    def close(self) -> bool:
        """Stops later sets from counting; True when the cancel was noticed before."""
        with self._guard:
            self._closed = True
            return self.is_set()


@dataclass(frozen=True)
class JobContext:
    job_id: str
    attempt: int
    trace_id: str
    objects: ObjectStore
    # Set by the worker's heartbeat when a lease renewal finds the job's cancel requested.
    cancel_flag: CancelSignal = field(default_factory=CancelSignal)
    # Where report_progress goes (the worker's writer stores it on the job, throttled).
    progress: ProgressReport = field(default_factory=ProgressReport)

    def report_progress(self, fraction: float, message: str | None = None) -> None:
        """Shows `fraction` (0.0-1.0) and an optional short `message` on the job as `progress`. Cheap: it keeps the
        value in memory; the worker writes the latest one at most every few seconds and the last one with the
        outcome. ValueError for a fraction outside 0.0-1.0; a message over MAX_PROGRESS_MESSAGE_CHARS is cut."""
        self.progress.report(fraction, message)

    @property
    def cancelled(self) -> bool:
        """True once a cancel of this job was requested and the worker noticed it (within the documented bound).
        A handler checks it between units of work and stops (raise JobCanceled, or return)."""
        return self.cancel_flag.is_set()

    def raise_if_cancelled(self) -> None:
        """The check between units of work: raises JobCanceled once `cancelled` is true."""
        if self.cancel_flag.is_set():
            raise JobCanceled()


Handler = Callable[[Any, JobContext], dict[str, Any]]
TypedHandler = Callable[[P, JobContext], dict[str, Any]]


@dataclass(frozen=True)
class JobType(Generic[P]):
    name: str
    params_model: type[P]
    handler: Callable[[P, JobContext], dict[str, Any]]
    description: str

    def parse_params(self, params: dict[str, Any]) -> P:
        """Raises pydantic.ValidationError naming the bad field."""
        return self.params_model.model_validate(params)


_REGISTRY: dict[str, JobType[Any]] = {}


def job_type(name: str, *, params: type[P]) -> Callable[[TypedHandler[P]], TypedHandler[P]]:
    def register(handler: TypedHandler[P]) -> TypedHandler[P]:
        if name in _REGISTRY:
            raise ValueError(f"job type {name!r} is registered twice")
        _REGISTRY[name] = JobType(name, params, handler, (handler.__doc__ or "").strip().split("\n")[0])
        return handler

    return register


def unregister(name: str) -> None:
    """For tests and benchmarks that register a type of their own."""
    _REGISTRY.pop(name, None)


def get_job_type(name: str) -> JobType[Any] | None:
    _load_builtin_types()
    return _REGISTRY.get(name)


def job_type_names() -> list[str]:
    _load_builtin_types()
    return sorted(_REGISTRY)


def _load_builtin_types() -> None:
    # Importing the package registers the built-in types (each module decorates its function).
    import runtime.job_types  # noqa: F401
