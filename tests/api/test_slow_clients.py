"""`python -m runtime.api` as a real uvicorn process on 127.0.0.1, driven with raw sockets the way slow or rude
clients behave: silent and trickling connections are closed after the header deadline, a trickling body gets a
408 after the body deadline, a caller hanging up mid-body is an info line (not an error), and no `server` header
says what runs here. Every wait is bounded by a socket timeout."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.adapters.resources import AwsResources, create_resources
from tests.api.conftest import issue_key
from tests.api.test_entry_points import REPO, api_env
from tests.conftest import free_port

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
# Generous: the server's own deadline plus a loaded machine's scheduling; without the deadlines these would hang.
WAIT_S = 6.0


@dataclass
class ApiProcess:
    port: int
    log: Path
    authorization: bytes  # an Authorization header line with a valid key: the body deadline is met after auth

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT_S)
        sock.settimeout(WAIT_S)
        return sock

    def unfinished_submit(self, headers: bytes = b"") -> bytes:
        """A submit whose headers are complete but whose body stops after its first bytes."""
        return (
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + self.authorization
            + headers
            + b'Content-Length: 100\r\n\r\n{"type": '
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                record = json.loads(line)
                if record.get("event") == name:
                    found.append(record)
        return found

    def wait_for_event(self, name: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        while not (found := self.events(name)):
            assert time.monotonic() < deadline, f"no {name} line in:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.05)
        return found[0]


@pytest.fixture(scope="module")
def api_process(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    resources: AwsResources = create_resources(moto_server, "slow")
    port = free_port()
    log = tmp_path_factory.mktemp("slow-clients") / "api.log"
    env = {
        **os.environ,
        **api_env(resources),
        "PYTHONPATH": str(REPO),
        "JOBS_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "JOBS_HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
    }
    env.pop("JOBS_SSM_PATH", None)
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime.api", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield ApiProcess(port, log, f"Authorization: Bearer {issue_key(resources)}\r\n".encode())
    finally:
        process.terminate()
        process.wait(timeout=20)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket.timeout if it never does)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_no_server_header(api_process: ApiProcess) -> None:
    with api_process.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_until_closed(sock)
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 200")
    assert b"\r\nserver:" not in head and b"uvicorn" not in head
    assert b"\r\nx-content-type-options: nosniff" in head


def test_a_connection_that_sends_nothing_is_closed_after_the_header_deadline(api_process: ApiProcess) -> None:
    with api_process.connect() as sock:
        started = time.monotonic()
        assert read_until_closed(sock) == b""
        elapsed = time.monotonic() - started
    assert HEADER_TIMEOUT_S * 0.8 <= elapsed < WAIT_S


def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_deadline(api_process: ApiProcess) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-Slow-%d: y\r\n" % i for i in range(100))
    with api_process.connect() as sock:
        started = time.monotonic()
        closed_after = None
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # reset: the server closed it
                closed_after = time.monotonic() - started
                break
            time.sleep(0.05)
            if time.monotonic() - started > WAIT_S:
                break
        if closed_after is None:
            sock.settimeout(0.5)
            try:
                if sock.recv(1) == b"":
                    closed_after = time.monotonic() - started
            except TimeoutError:
                pass
    assert closed_after is not None and closed_after < WAIT_S, "the trickling client was never cut off"


def test_a_body_sent_too_slowly_gets_408_and_the_connection_closes(api_process: ApiProcess) -> None:
    with api_process.connect() as sock:
        sock.sendall(api_process.unfinished_submit())
        started = time.monotonic()
        answer = read_until_closed(sock)
        elapsed = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert json.loads(body) == {"error": "request_timeout", "detail": f"body: not received within {BODY_TIMEOUT_S:g} s"}
    assert BODY_TIMEOUT_S * 0.8 <= elapsed < WAIT_S


def test_a_client_hanging_up_mid_body_is_logged_at_info(api_process: ApiProcess) -> None:
    with api_process.connect() as sock:
        sock.sendall(api_process.unfinished_submit(b"X-Trace-Id: hung-up-mid-body\r\n"))
        time.sleep(0.2)  # the request reached the route and waits for the rest of the body
    record = api_process.wait_for_event("http_client_disconnected")
    assert record["level"] == "info" and record["traceId"] == "hung-up-mid-body"
    assert not [
        line for line in api_process.events("http_unhandled_error") if line.get("traceId") == "hung-up-mid-body"
    ]
