"""A callback receiver for tests: an HTTP server on 127.0.0.1 that records every POST and answers as told
(a status per path, a list of statuses to go through, or a hang before answering)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from runtime.domain.callbacks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived

    @property
    def document(self) -> Any:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers[EVENT_ID_HEADER]

    def signed_by(self, secret: str) -> bool:
        return verify_signature(secret, self.headers[SIGNATURE_HEADER], self.body, now_s=time.time())


@dataclass
class Listener:
    base_url: str
    received: list[Received] = field(default_factory=list)
    # path -> statuses to answer in turn (the last one repeats); paths not named answer 200
    statuses: dict[str, list[int]] = field(default_factory=dict)
    hang_s: dict[str, float] = field(default_factory=dict)  # path -> seconds to wait before answering
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [request for request in self.received if request.path == path]


@contextmanager
def listening() -> Iterator[Listener]:
    listener = Listener(base_url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with listener.lock:
                listener.received.append(Received(self.path, dict(self.headers.items()), body, time.monotonic()))
                statuses = listener.statuses.get(self.path, [200])
                status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            hang = listener.hang_s.get(self.path, 0.0)
            if hang:
                time.sleep(hang)  # stands in for an endpoint that does not answer
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the caller gave up and closed the connection

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    listener.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="callback-listener", daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        server.shutdown()
        server.server_close()
