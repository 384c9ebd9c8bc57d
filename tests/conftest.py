"""Shared fixtures: a real moto server over HTTP, as the local all-in-one runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def moto_process() -> Iterator[str]:
    """A moto server in a process of its own. moto keeps its state per process, so every server started
    in the test process shares one state: a test that deploys the stateful stack (its SSM parameter names
    are fixed, /job-tickets/local/...) needs a server of its own, or two deployments collide."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def isolated_moto_server() -> Iterator[str]:
    """A moto server with state of its own, for one test module (see moto_process)."""
    with moto_process() as url:
        yield url
