"""ASGI middleware: security headers on every answer; the request's trace id (X-Trace-Id on every answer) and
a JSON 500 for anything unhandled; JSON-only request bodies, read within a deadline."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from starlette.requests import ClientDisconnect

from runtime.api.errors import error_response
from runtime.observability import log_event, logs, tracing
from runtime.observability.names import LogEvent

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TRACE_HEADER = b"x-trace-id"
# A caller's id is kept when it is a short token of safe characters; anything else is replaced.
_SAFE_TRACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")


def new_trace_id() -> str:
    """An X-Ray compatible id ("1-<epoch s, 8 hex>-<24 hex>"), so tracing can use it as its root."""
    return f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def accepted_trace_id(value: str | None) -> str | None:
    return value if value is not None and _SAFE_TRACE_ID.fullmatch(value) else None


class HttpMiddleware:
    """Passes what is not an HTTP request (lifespan events) straight to the app; `handle_http` gets the rest."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle_http(scope, receive, send)

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


def trace_id_of(scope: Scope) -> str:
    """The trace id chosen for this request (set by TraceIdMiddleware)."""
    return str(scope.get("state", {}).get("trace_id") or new_trace_id())


class TraceIdMiddleware(HttpMiddleware):
    """Outermost: picks the trace id (the caller's valid X-Trace-Id or a new one), binds it for the logs,
    adds X-Trace-Id to every answer, and turns an unhandled exception into a JSON 500 without a stack trace."""

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = None
        for name, value in scope.get("headers", ()):
            if name == TRACE_HEADER:
                caller = value.decode("latin-1")
        # With tracing on, the request's span has begun (outside this middleware): a request without an id of its
        # own takes the span's trace id, so that logs, the job's traceId and the trace share one id.
        trace_id = accepted_trace_id(caller) or tracing.current_trace_id() or new_trace_id()
        scope.setdefault("state", {})["trace_id"] = trace_id
        tracing.annotate(traceId=trace_id)
        trace_header = (TRACE_HEADER, trace_id.encode("latin-1"))
        started = False

        async def send_with_trace_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), trace_header]
            await send(message)

        with logs.bind(trace_id=trace_id):
            try:
                await self.app(scope, receive, send_with_trace_id)
            except ClientDisconnect:
                # The caller hung up mid-request: nobody to answer, nothing wrong with the service.
                log_event(LogEvent.HTTP_CLIENT_DISCONNECTED, path=scope.get("path"), method=scope.get("method"))
            except Exception as exc:
                log_event(
                    LogEvent.HTTP_UNHANDLED_ERROR,
                    level="error",
                    path=scope.get("path"),
                    errorType=type(exc).__name__,
                    message=str(exc)[:500],
                )
                if started:
                    raise
                body = json.dumps(
                    {"error": "internal_error", "detail": f"an unexpected error occurred; quote trace id {trace_id}"}
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            trace_header,
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})


SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff")]
# Job answers are one caller's data and change over time: no shared or browser cache may keep them.
NO_STORE_PREFIX = "/api/"
NO_STORE = (b"cache-control", b"no-store")


class SecurityHeadersMiddleware(HttpMiddleware):
    """Outermost: `X-Content-Type-Options: nosniff` on every answer, `Cache-Control: no-store` on /api/ answers."""

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        added = SECURITY_HEADERS + ([NO_STORE] if str(scope.get("path", "")).startswith(NO_STORE_PREFIX) else [])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_json_media_type(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


class RequestBodyMiddleware(HttpMiddleware):
    """Reads a request's body before any route (or authentication) sees it, and refuses it unless it is JSON (415:
    a cross-site form post cannot pass for one), at most `max_body_bytes` (413, by Content-Length and by the bytes
    read; a path in `max_body_bytes_by_path` has its own limit) and complete within `body_timeout_s` of the headers
    (408: a client trickling its body cannot hold a request open). A refused body's connection is closed; a caller
    hanging up mid-body raises ClientDisconnect (logged at info by TraceIdMiddleware). The route then receives the
    body from memory."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout_s: float,
        max_body_bytes_by_path: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(app)
        self.max_body_bytes = max_body_bytes
        self.max_body_bytes_by_path = dict(max_body_bytes_by_path or {})
        self.body_timeout_s = body_timeout_s

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = declared = None
        chunked = False
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                declared = value.strip()
            elif name == b"transfer-encoding":
                chunked = True
        if not chunked and declared in (None, b"0"):
            await self.app(scope, receive, send)
            return
        if not is_json_media_type(content_type):
            shown = "none" if content_type is None else repr(content_type[:60])
            await _refuse(
                scope,
                receive,
                send,
                415,
                "unsupported_media_type",
                f"Content-Type: must be application/json (or a +json type), got {shown}",
            )
            return
        limit = self.max_body_bytes_by_path.get(str(scope.get("path", "")), self.max_body_bytes)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(
                scope,
                receive,
                send,
                413,
                "payload_too_large",
                f"body: {int(declared)} bytes is over the limit of {limit} bytes",
            )
            return
        try:
            body = await asyncio.wait_for(_read_body(receive, limit), timeout=self.body_timeout_s)
        except TimeoutError:
            log_event(LogEvent.HTTP_BODY_TIMEOUT, path=scope.get("path"), timeoutS=self.body_timeout_s)
            await _refuse(
                scope, receive, send, 408, "request_timeout", f"body: not received within {self.body_timeout_s:g} s"
            )
            return
        if body is None:
            await _refuse(
                scope, receive, send, 413, "payload_too_large", f"body: more than {limit} bytes is over the limit"
            )
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:  # later receives wait for a disconnect
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit` bytes."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return bytes(body)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str, detail: str) -> None:
    # The rest of the body is not read, so the connection cannot carry another request: close it.
    response = error_response(status, code, detail, {"Connection": "close"})
    await response(scope, receive, send)
