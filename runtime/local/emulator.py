"""The AWS emulator of the local all-in-one: moto's server in this process, or the endpoint already
named by AWS_ENDPOINT_URL (LocalStack, a moto server a test controls), in which case nothing starts."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

HOST = "127.0.0.1"


@dataclass
class Emulator:
    endpoint_url: str
    server: Any | None  # moto's ThreadedMotoServer when this process runs it

    @property
    def owned(self) -> bool:
        return self.server is not None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def start_emulator(port: int) -> Emulator:
    """Starts moto on 127.0.0.1:`port`, unless AWS_ENDPOINT_URL already names an emulator."""
    external = os.environ.get("AWS_ENDPOINT_URL")
    if external:
        return Emulator(endpoint_url=external.rstrip("/"), server=None)
    check_port_free(port)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    return Emulator(endpoint_url=f"http://{HOST}:{port}", server=server)


def check_port_free(port: int) -> None:
    # moto's server thread would die quietly on a taken port; say so up front instead. SO_REUSEADDR as the
    # server itself binds: without it, the previous run's connections in TIME_WAIT block the port for a minute,
    # while a port another process listens on is still refused.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise RuntimeError(f"aws emulator port {port} is taken: {exc.strerror}") from exc
