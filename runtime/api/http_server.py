"""uvicorn as the API serves it: no `server` header, bounded headers, and a deadline for a request's headers."""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from runtime.observability import log_event
from runtime.observability.names import LogEvent
from runtime.settings import Settings

# A request line plus headers larger than this is refused (400) before it is buffered further.
MAX_HEADER_BYTES = 16_384


class HeaderDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for a request's headers. uvicorn alone waits forever for a
    connection that sends nothing, or one header byte at a time (its keep-alive timer stops at the first byte),
    so a few hundred slow sockets would hold the process. The deadline starts when the connection opens and at
    the first byte of each later request; the connection is closed when the headers are not complete by then."""

    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        if self._header_deadline is None and self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request's headers are complete
            self._disarm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._on_header_deadline)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _on_header_deadline(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else None
            log_event(LogEvent.HTTP_HEADER_TIMEOUT, client=client, timeoutS=self.header_timeout_s)
            self.timeout_keep_alive_handler()  # closes the connection


def protocol_with_header_deadline(timeout_s: float) -> type[H11Protocol]:
    return type("HeaderDeadlineH11Protocol", (HeaderDeadlineH11Protocol,), {"header_timeout_s": timeout_s})


def server_config(app: Any, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    # log_config=None keeps the JSON log handlers that observability installed; no access log (bytes cost).
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,  # the software and version are nobody's business
        timeout_keep_alive=settings.http_keep_alive_s,
        timeout_graceful_shutdown=10,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        http=protocol_with_header_deadline(settings.http_header_timeout_s),
    )
