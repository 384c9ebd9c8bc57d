"""Webhook signature verification: the header the service sends, tolerance, rotation (several v1 values)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from jobtickets import InvalidSignature, sign, verify_signature

SECRET = "whsec_test"
BODY = b'{"event":"job.succeeded","job":{"jobId":"j1"}}'
NOW = 1_790_000_000


def reference_signature(secret: str, timestamp: int, body: bytes) -> str:
    # Written from the contract's words, independently of jobtickets.webhooks.
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def test_a_delivery_signed_as_the_contract_says_verifies() -> None:
    header = f"t={NOW},v1={reference_signature(SECRET, NOW, BODY)}"
    assert verify_signature(SECRET, header, BODY, now=NOW + 10) == NOW
    assert verify_signature(SECRET.encode(), header, BODY.decode(), now=NOW) == NOW
    assert sign(SECRET, BODY, NOW) == header


def test_any_of_several_v1_values_may_match_during_a_rotation() -> None:
    header = f"t={NOW}, v1={'0' * 64}, v1={reference_signature(SECRET, NOW, BODY)}"
    assert verify_signature(SECRET, header, BODY, now=NOW) == NOW


@pytest.mark.parametrize(
    ("header", "body", "now", "reason"),
    [
        (f"t={NOW},v1={reference_signature(SECRET, NOW, BODY)}", BODY + b" ", NOW, "does not match"),
        (f"t={NOW},v1={reference_signature('other', NOW, BODY)}", BODY, NOW, "does not match"),
        (f"t={NOW},v1={reference_signature(SECRET, NOW, BODY)}", BODY, NOW + 301, "tolerance"),
        (f"t={NOW},v1={reference_signature(SECRET, NOW, BODY)}", BODY, NOW - 301, "tolerance"),
        (f"t={NOW + 1},v1={reference_signature(SECRET, NOW, BODY)}", BODY, NOW, "does not match"),
        (f"v1={reference_signature(SECRET, NOW, BODY)}", BODY, NOW, "no t="),
        (f"t={NOW}", BODY, NOW, "no v1="),
        (f"t=abc,v1={reference_signature(SECRET, NOW, BODY)}", BODY, NOW, "not a number"),
        (f"t={NOW},v1=zzzé", BODY, NOW, "does not match"),
        ("", BODY, NOW, "no t="),
    ],
)
def test_bad_signatures_are_refused_with_the_reason(header: str, body: bytes, now: int, reason: str) -> None:
    with pytest.raises(InvalidSignature, match=reason):
        verify_signature(SECRET, header, body, now=now)


def test_the_tolerance_is_configurable() -> None:
    header = sign(SECRET, BODY, NOW)
    assert verify_signature(SECRET, header, BODY, tolerance_s=3600, now=NOW + 3000) == NOW
    with pytest.raises(InvalidSignature):
        verify_signature(SECRET, header, BODY, tolerance_s=5, now=NOW + 6)
