"""X-Ray tracing behind one small module (the only one importing aws_xray_sdk), so that a move to
OpenTelemetry touches this file only. Everything here is a no-op unless settings.tracing_enabled."""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_DAEMON_ADDRESS = "127.0.0.1:2000"

_lock = threading.Lock()
_enabled = False
_patched = False


def enabled() -> bool:
    return _enabled


def _in_lambda() -> bool:
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


def configure(settings: Settings) -> None:
    """Turns tracing on when settings.tracing_enabled: daemon from AWS_XRAY_DAEMON_ADDRESS, botocore patched."""
    global _enabled
    if not settings.tracing_enabled:
        return
    from aws_xray_sdk.core import xray_recorder

    with _lock:
        options: dict[str, Any] = {
            "service": settings.service_name,
            "daemon_address": os.environ.get("AWS_XRAY_DAEMON_ADDRESS", DEFAULT_DAEMON_ADDRESS),
            # A missing segment must never break a request or a job: log it and go on.
            "context_missing": "LOG_ERROR",
            "plugins": (),
        }
        if not _in_lambda():
            # Lambda provides its own facade segment; elsewhere keep the trace in a ContextVar so that it
            # follows the request from the asyncio task into FastAPI's thread pool.
            options["context"] = _contextvar_context()
        xray_recorder.configure(**options)
        _enabled = True
    patch_aws_sdk()


def patch_aws_sdk() -> None:
    """Records every botocore call as a subsegment (and sends the trace header to AWS)."""
    global _patched
    if not _enabled or _patched:
        return
    from aws_xray_sdk.core import patch

    patch(("botocore",))
    _patched = True


def _contextvar_context() -> Any:
    from aws_xray_sdk.core.context import Context

    entities: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("xray_entities", default=None)

    class _Local:
        @property
        def entities(self) -> list[Any] | None:
            return entities.get()

        @entities.setter
        def entities(self, value: list[Any] | None) -> None:
            entities.set(value)

    class ContextVarContext(Context):
        def __init__(self) -> None:
            super().__init__(context_missing="LOG_ERROR")
            self._local = _Local()

        def clear_trace_entities(self) -> None:
            entities.set(None)

    return ContextVarContext()


@contextlib.contextmanager
def segment(name: str, trace_header: str | None = None) -> Iterator[Any]:
    """A segment for one unit of work (a request, a job); continues `trace_header` (X-Amzn-Trace-Id or
    SQS AWSTraceHeader) when given. In Lambda, where the segment belongs to the service, a subsegment."""
    if not _enabled:
        yield None
        return
    if _in_lambda():
        with subsegment(name) as entity:
            yield entity
        return
    from aws_xray_sdk.core import xray_recorder
    from aws_xray_sdk.core.models.trace_header import TraceHeader

    header = TraceHeader.from_header_str(trace_header) if trace_header else None
    sampled = header.sampled if header is not None and header.sampled in (0, 1) else None
    entity = xray_recorder.begin_segment(
        name,
        traceid=header.root if header is not None else None,
        parent_id=header.parent if header is not None else None,
        sampling=sampled,
    )
    try:
        yield entity
    except BaseException as exc:
        if hasattr(entity, "add_exception"):
            entity.add_exception(exc, [])
        raise
    finally:
        xray_recorder.end_segment()


def continue_trace(name: str, aws_trace_header: str | None) -> contextlib.AbstractContextManager[Any]:
    """The segment for work received from SQS: carries on the trace of the message's AWSTraceHeader."""
    return segment(name, trace_header=aws_trace_header)


@contextlib.contextmanager
def subsegment(name: str) -> Iterator[Any]:
    if not _enabled:
        yield None
        return
    from aws_xray_sdk.core import xray_recorder

    with xray_recorder.in_subsegment(name) as entity:
        yield entity


def annotate(**values: str | int | float | bool) -> None:
    """Indexed annotations (jobId, jobType) on the current segment or subsegment."""
    if not _enabled:
        return
    from aws_xray_sdk.core import xray_recorder

    entity = xray_recorder.context.get_trace_entity() if _has_entity() else None
    if entity is None:
        return
    for key, value in values.items():
        entity.put_annotation(key, value)


def _has_entity() -> bool:
    from aws_xray_sdk.core import xray_recorder

    return bool(getattr(xray_recorder.context._local, "entities", None)) or _in_lambda()


def current_trace_header() -> str | None:
    """ "Root=...;Parent=...;Sampled=..." of the current segment, for SQS AWSTraceHeader; None when off."""
    if not _enabled or not _has_entity():
        return None
    from aws_xray_sdk.core import xray_recorder
    from aws_xray_sdk.core.models.trace_header import TraceHeader

    entity = xray_recorder.context.get_trace_entity()
    trace_id = getattr(entity, "trace_id", None)
    if entity is None or not trace_id:
        return None
    sampled = 1 if getattr(entity, "sampled", False) else 0
    return str(TraceHeader(root=trace_id, parent=entity.id, sampled=sampled).to_header_str())


class TracingMiddleware:
    """ASGI middleware: one segment per HTTP request, continuing an incoming X-Amzn-Trace-Id.
    Checks `enabled()` per request, so it can be added before tracing is configured."""

    def __init__(self, app: ASGIApp, *, name: str | None = None) -> None:
        self.app = app
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _enabled:
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])}
        status: dict[str, int] = {}

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        from aws_xray_sdk.core import xray_recorder

        with segment(self.name or xray_recorder.service or "api", headers.get("x-amzn-trace-id")) as entity:
            if entity is not None and hasattr(entity, "put_http_meta"):
                entity.put_http_meta("method", scope.get("method"))
                entity.put_http_meta("url", scope.get("path"))
            await self.app(scope, receive, send_with_status)
            if entity is not None and hasattr(entity, "put_http_meta") and "code" in status:
                entity.put_http_meta("status", status["code"])
                if status["code"] >= 500:
                    entity.add_fault_flag()


def add_fastapi_middleware(app: Any, *, name: str | None = None) -> None:
    """`add_fastapi_middleware(app)` in create_app(): traces every request once tracing is configured."""
    app.add_middleware(TracingMiddleware, name=name)
