"""Verifying the service's webhook deliveries: `Job-Tickets-Signature: t=<unix seconds>,v1=<hex>` where the hex is
HMAC-SHA256(tenant secret, "<t>.<raw body>"). During a secret rotation the header may carry several v1 values;
one match is enough."""

from __future__ import annotations

import hashlib
import hmac
import time

from jobtickets.errors import InvalidSignature

SIGNATURE_HEADER = "Job-Tickets-Signature"
EVENT_ID_HEADER = "Job-Tickets-Event-Id"
SCHEME = "v1"


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def compute_signature(secret: str | bytes, timestamp: int, body: str | bytes) -> str:
    """The hex v1 signature of `body` sent at `timestamp`."""
    message = str(timestamp).encode("ascii") + b"." + _bytes(body)
    return hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: str | bytes, timestamp: int | None = None) -> str:
    """A Job-Tickets-Signature header value for `body`, as the service makes it (for tests and local tools)."""
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},{SCHEME}={compute_signature(secret, moment, body)}"


def verify_signature(
    secret: str | bytes, header: str, body: str | bytes, tolerance_s: float = 300, *, now: float | None = None
) -> int:
    """Checks a delivery against the tenant's webhook secret: `body` must be the raw request body, exactly as
    received. Returns the signed timestamp; raises InvalidSignature when the header is malformed, its timestamp is
    more than `tolerance_s` seconds from now (a replay), or no v1 value matches (compared in constant time)."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            if not value.isdigit():
                raise InvalidSignature(f"signature header: timestamp is not a number, got {value[:20]!r}")
            timestamp = int(value)
        elif name == SCHEME:
            candidates.append(value)
    if timestamp is None:
        raise InvalidSignature("signature header: no t= timestamp")
    if not candidates:
        raise InvalidSignature(f"signature header: no {SCHEME}= signature")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise InvalidSignature(f"signature timestamp {timestamp} is outside the tolerance of {tolerance_s:g} s")
    expected = compute_signature(secret, timestamp, body)
    # Every candidate is compared (no early exit), each in constant time.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode("ascii"), candidate.strip().lower().encode("utf-8", "replace"))
    if not matched:
        raise InvalidSignature("signature does not match the body and secret")
    return timestamp
