"""Shared fixtures: a real moto server over HTTP, as the local all-in-one runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# Tests never reach real AWS: dummy credentials and a fixed region for every client they build.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server for the session; tests isolate themselves by creating uniquely named resources."""
    from moto.server import ThreadedMotoServer

    from tests.moto_atomic import make_dynamodb_item_operations_atomic

    make_dynamodb_item_operations_atomic()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


# A moto server whose DynamoDB item operations are atomic (tests/moto_atomic.py), as the in-process one is.
_ATOMIC_MOTO = (
    "import sys; from tests.moto_atomic import make_dynamodb_item_operations_atomic; "
    "make_dynamodb_item_operations_atomic(); from moto.server import main; main(sys.argv[1:])"
)
_REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class MotoProcess:
    """A moto server in a process of its own, which a test may freeze (SIGSTOP) and thaw (SIGCONT): the emulator
    keeps accepting connections (the kernel's listen backlog) but answers nothing, as a stalled store does."""

    url: str
    process: subprocess.Popen[bytes]

    @contextmanager
    def frozen(self) -> Iterator[None]:
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)


@contextmanager
def moto_subprocess(*, atomic: bool = False) -> Iterator[MotoProcess]:
    """A moto server in a process of its own (see moto_process); `atomic` makes its item operations atomic."""
    port = free_port()
    command = [sys.executable, *(("-c", _ATOMIC_MOTO) if atomic else ("-m", "moto.server"))]
    server = subprocess.Popen(
        [*command, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=_REPO_ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)  # the server process is still starting
        yield MotoProcess(url, server)
    finally:
        os.kill(server.pid, signal.SIGCONT)  # a frozen server cannot handle the SIGTERM
        server.terminate()
        server.wait(timeout=10)


@contextmanager
def moto_process() -> Iterator[str]:
    """A moto server in a process of its own. moto keeps its state per process, so every server started
    in the test process shares one state: a test that deploys the stateful stack (its SSM parameter names
    are fixed, /job-tickets/local/...) needs a server of its own, or two deployments collide."""
    with moto_subprocess() as moto:
        yield moto.url


@pytest.fixture(scope="module")
def isolated_moto_server() -> Iterator[str]:
    """A moto server with state of its own, for one test module (see moto_process)."""
    with moto_process() as url:
        yield url
