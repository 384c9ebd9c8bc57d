"""One callback POST to a checked address: connects to `CallbackTarget.address` (never resolving the host again),
sends Host and TLS server name of the URL's host (the certificate is verified against it), follows no redirect,
gives up after a total deadline however the peer drips its answer, and reads at most a few KB of the answer."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any

from runtime.callbacks.addresses import CallbackTarget

# The answer's body is not used: reading a little of it lets the peer finish writing; more is never read.
MAX_RESPONSE_BYTES = 4096


class _PinnedConnection(http.client.HTTPConnection):
    def __init__(self, target: CallbackTarget, timeout_s: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout_s)
        self._pin(target.address)

    def _pin(self, address: str) -> None:
        def create_connection(where: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
            return socket.create_connection((address, where[1]), *args, **kwargs)

        self._create_connection = create_connection


class _PinnedTlsConnection(http.client.HTTPSConnection):
    def __init__(self, target: CallbackTarget, timeout_s: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout_s, context=ssl.create_default_context())

        def create_connection(where: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
            return socket.create_connection((target.address, where[1]), *args, **kwargs)

        # HTTPSConnection.connect() wraps this socket with server_hostname=host: SNI and the certificate check
        # stay on the URL's host while the TCP connection goes to the checked address.
        self._create_connection = create_connection


def post(
    target: CallbackTarget,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_s: float,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
) -> int | None:
    """The answer's status code, or None when there was no complete answer within `timeout_s` in total
    (connection refused or reset, TLS failure, timeout, malformed answer)."""
    connection: http.client.HTTPConnection = (
        _PinnedTlsConnection(target, timeout_s) if target.scheme == "https" else _PinnedConnection(target, timeout_s)
    )
    started = time.monotonic()
    # Socket timeouts bound each read, not the whole answer: a peer sending one byte every few seconds would keep a
    # plain timeout from ever firing. The watchdog shuts the socket at the deadline, which ends any blocked call.
    watchdog = threading.Timer(timeout_s, _abort, args=(connection,))
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request("POST", target.path, body=body, headers=dict(headers))
        response = connection.getresponse()
        response.read(max_response_bytes)
        if time.monotonic() - started > timeout_s:
            return None
        return response.status
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        watchdog.cancel()
        connection.close()


def _abort(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # closed already: nothing left to end
            sock.shutdown(socket.SHUT_RDWR)
