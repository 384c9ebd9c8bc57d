"""A real HTTP server on 127.0.0.1 standing in for the ECS container agent's task protection endpoint: it
records every request and answers as the agent does, or with an error, or not at all."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# ECS_AGENT_URI in a Fargate task looks like http://169.254.170.2/api/<task id>-<number>.
AGENT_PATH = "/api/0f3c2a7e5b8d4c1e9a6b2d4f8e1c3a5b-1234567890"
TASK_ARN = "arn:aws:ecs:us-east-1:111111111111:task/jobs/0f3c2a7e5b8d4c1e9a6b2d4f8e1c3a5b"
# A handler told to hang gives up after this, so that a test that forgets to close cannot hang the run.
HANG_LIMIT_S = 60.0


@dataclass(frozen=True)
class AgentRequest:
    method: str
    path: str
    content_type: str | None
    body: Any


class FakeEcsAgent:
    """`url` is the ECS_AGENT_URI to hand to the worker. A 200 answers with the agent's success shape, or with
    `answer` when given; another `status` with the agent's error shape; `hang` holds every answer until close()."""

    def __init__(self, *, status: int = 200, answer: dict[str, Any] | None = None, hang: bool = False) -> None:
        self.status = status
        self.answer = answer
        self.hang = hang
        self._requests: list[AgentRequest] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                agent._handle(self)

            def do_GET(self) -> None:
                agent._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output to the worker's own lines

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-ecs-agent", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{AGENT_PATH}"

    def requests(self) -> list[AgentRequest]:
        with self._lock:
            return list(self._requests)

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            self._requests.append(
                AgentRequest(handler.command, handler.path, handler.headers.get("Content-Type"), body)
            )
        if self.hang:
            self._release.wait(HANG_LIMIT_S)
            return  # the connection closes without an answer
        answer: dict[str, Any]
        if self.status == 200 and self.answer is not None:
            answer = self.answer
        elif self.status == 200:
            enabled = bool(body.get("ProtectionEnabled")) if isinstance(body, dict) else False
            answer = {"protection": {"ProtectionEnabled": enabled, "TaskArn": TASK_ARN, "ExpirationDate": None}}
        else:
            answer = {"error": {"Code": "ServerException", "Message": "fake agent error"}}
        payload = json.dumps(answer).encode()
        handler.send_response(self.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
