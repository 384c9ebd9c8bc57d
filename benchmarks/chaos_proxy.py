"""A fault-injecting HTTP proxy in front of the AWS emulator, for the chaos suite (benchmarks/chaos.py).

Each request is attributed to a service by its X-Amz-Target (JSON protocols: "DynamoDB_20120810.PutItem",
"AmazonSQS.SendMessage") or else by the credential scope of its SigV4 Authorization header (".../sqs/aws4_request",
as SQS's query protocol sends it). For DynamoDB and SQS, at the configured rates, the proxy answers in place of the
emulator with the error AWS itself would send, in that protocol's format, so the SDK's retry logic sees the real
thing: a server error (500 InternalError / InternalServerError, 503 ServiceUnavailable), a throttle
(DynamoDB's ThrottlingException / ProvisionedThroughputExceededException, SQS's RequestThrottled), or it forwards
after a latency spike. An injected error never reaches the emulator, so the refused call had no effect, as a
refused call to AWS has none. Other services (S3, SSM) always pass. An error rate of 1 for one service is that
service's outage, switched on and off with `enabled` (tests/e2e/test_queue_outage.py).
"""

from __future__ import annotations

import http.client
import json
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "content-length"}
FAULTED_SERVICES = ("dynamodb", "sqs")
UPSTREAM_TIMEOUT_S = 60.0  # above SQS's longest poll (20 s)
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")
_DYNAMODB_PREFIX = "com.amazonaws.dynamodb.v20120810#"


@dataclass(frozen=True)
class FaultRates:
    """Per request of a faulted service: the chance of a 5xx, of a throttle and of a latency spike (0-1 each)."""

    error: float = 0.0
    throttle: float = 0.0
    latency: float = 0.0
    latency_s: float = 0.5

    def __post_init__(self) -> None:
        for name in ("error", "throttle", "latency"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} rate must be within 0-1, got {value}")
        if self.error + self.throttle > 1.0:
            raise ValueError(f"error + throttle rates exceed 1: {self.error} + {self.throttle}")
        if self.latency_s < 0:
            raise ValueError(f"latency_s must not be negative, got {self.latency_s}")


@dataclass(frozen=True)
class InjectedError:
    status: int
    code: str  # the AWS error code the SDK reads
    fault: str  # "InternalError", "throttle": for the counts


# (status, DynamoDB code, SQS code) per kind of injected error.
_SERVER_ERRORS = ((500, "InternalServerError", "InternalError"), (503, "ServiceUnavailable", "ServiceUnavailable"))
_THROTTLES = {
    "dynamodb": ("ThrottlingException", "ProvisionedThroughputExceededException"),
    "sqs": ("RequestThrottled",),
}


def service_of(headers: Message | Mapping[str, str]) -> str | None:
    """The AWS service a request is for: X-Amz-Target's prefix, else the SigV4 credential scope."""
    target = headers.get("X-Amz-Target") or ""
    if target.startswith("DynamoDB_"):
        return "dynamodb"
    if target.startswith("AmazonSQS."):
        return "sqs"
    found = _SCOPE.search(headers.get("Authorization") or "")
    return found.group(1) if found else None


def operation_of(headers: Message | Mapping[str, str], body: bytes) -> str:
    """The API operation a request calls: X-Amz-Target's suffix (JSON protocols), else the query's Action."""
    target = headers.get("X-Amz-Target") or ""
    if "." in target:
        return target.split(".", 1)[1]
    actions = parse_qs(body.decode("utf-8", "replace")).get("Action")
    return actions[0] if actions else ""


def error_response(service: str, error: InjectedError, *, json_protocol: bool) -> tuple[dict[str, str], bytes]:
    """Headers and body of `error` as `service` sends it in its protocol (JSON 1.0, or SQS's query/XML)."""
    message = f"injected by the chaos proxy ({error.fault})"
    request_id = str(uuid.uuid4())
    if service == "dynamodb":
        body = json.dumps({"__type": _DYNAMODB_PREFIX + error.code, "message": message}).encode()
        return {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": request_id}, body
    fault_side = "Sender" if error.status < 500 else "Receiver"
    if json_protocol:
        body = json.dumps({"__type": f"com.amazonaws.sqs#{error.code}", "message": message}).encode()
        return {
            "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-RequestId": request_id,
            # SQS's JSON protocol is query-compatible: the SDK takes the classic error code from this header.
            "x-amzn-query-error": f"{error.code};{fault_side}",
        }, body
    xml = (
        f'<?xml version="1.0"?><ErrorResponse><Error><Type>{fault_side}</Type><Code>{error.code}</Code>'
        f"<Message>{message}</Message><Detail/></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, xml.encode()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A caller killed on purpose (the worker, the API) resets its connections: expected, not worth a trace.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class FaultProxy:
    """Forwards to `upstream_url`; injects faults at `rates` per faulted service once `enabled` is set."""

    def __init__(self, upstream_url: str, rates: dict[str, FaultRates], *, seed: int | None = None) -> None:
        unknown = set(rates) - set(FAULTED_SERVICES)
        if unknown:
            raise ValueError(f"faults only for {FAULTED_SERVICES}, got {sorted(unknown)}")
        upstream = urlsplit(upstream_url)
        self._upstream = (upstream.hostname or "127.0.0.1", upstream.port or 80)
        self._rates = dict(rates)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.enabled = threading.Event()
        self.counts: Counter[str] = Counter()  # "<service> <fault>" -> requests, and "<service> requests"
        self.refused: Counter[str] = Counter()  # "<service> <operation>" -> requests answered with an injected error
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                service = service_of(self.headers)
                error, delay_s = proxy._draw(service)
                if service is not None and error is not None:
                    with proxy._lock:
                        proxy.refused[f"{service} {operation_of(self.headers, body)}"] += 1
                    json_protocol = "json" in (self.headers.get("Content-Type") or "")
                    headers, payload = error_response(service, error, json_protocol=json_protocol)
                    self._answer(error.status, headers, payload)
                    return
                if delay_s:
                    time.sleep(delay_s)  # the latency spike under test: the caller waits as on a slow service
                self._forward(body)

            def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _forward(self, body: bytes) -> None:
                connection = http.client.HTTPConnection(*proxy._upstream, timeout=UPSTREAM_TIMEOUT_S)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    payload = response.read()
                    passed = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
                    self.send_response(response.status, response.reason)
                    for key, value in passed.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    connection.close()

            def _serve_unless_gone(self) -> None:
                try:
                    self._serve()
                except (BrokenPipeError, ConnectionResetError, TimeoutError):
                    # The caller went away (a killed worker mid long poll, a client that timed out): nobody to answer.
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve_unless_gone

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="chaos-proxy", daemon=True)

    def _draw(self, service: str | None) -> tuple[InjectedError | None, float]:
        """What happens to one request: an error to answer, or a delay (0: none) before forwarding."""
        rates = self._rates.get(service or "")
        with self._lock:
            if service is not None:
                self.counts[f"{service} requests"] += 1
            if rates is None or not self.enabled.is_set():
                return None, 0.0
            draw = self._random.random()
            if draw < rates.error:
                status, dynamodb_code, sqs_code = self._random.choice(_SERVER_ERRORS)
                code = dynamodb_code if service == "dynamodb" else sqs_code
                self.counts[f"{service} {status}"] += 1
                return InjectedError(status, code, f"{status} {code}"), 0.0
            if draw < rates.error + rates.throttle:
                code = self._random.choice(_THROTTLES[service or ""])
                self.counts[f"{service} throttle"] += 1
                return InjectedError(400, code, code), 0.0
            if self._random.random() < rates.latency:
                self.counts[f"{service} latency"] += 1
                return None, rates.latency_s
            return None, 0.0

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
