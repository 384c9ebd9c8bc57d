"""An HTTP proxy in front of moto's server that can make SQS unreachable while the other services answer.

SQS's JSON protocol names the operation in X-Amz-Target ("AmazonSQS.SendMessage"): while `sqs_down` is
set, those requests get 503 Service Unavailable, as from an SQS outage; everything else is forwarded.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "content-length"}


class SqsOutageProxy:
    def __init__(self, upstream_url: str) -> None:
        upstream = urlsplit(upstream_url)
        self.sqs_down = threading.Event()
        self.refused: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                target = self.headers.get("X-Amz-Target", "")
                if target.startswith("AmazonSQS.") and proxy.sqs_down.is_set():
                    proxy.refused.append(target.split(".", 1)[1])
                    payload = b'{"__type":"ServiceUnavailable","message":"sqs is down (test outage)"}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/x-amz-json-1.0")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                connection = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    payload = response.read()
                    self.send_response(response.status, response.reason)
                    for key, value in response.getheaders():
                        if key.lower() not in HOP_BY_HOP:
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    connection.close()

            def _forward_unless_gone(self) -> None:
                try:
                    self._forward()
                except (BrokenPipeError, ConnectionResetError):
                    # The caller went away (a worker stopped mid long poll): nobody to answer.
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward_unless_gone

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="sqs-outage-proxy", daemon=True)

    def start(self) -> SqsOutageProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
