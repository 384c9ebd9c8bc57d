"""The submit fingerprint: equal documents give equal prints whatever their key order or spacing."""

from __future__ import annotations

import pytest

from runtime.domain.fingerprint import canonical_json, fingerprint


def test_key_order_does_not_matter() -> None:
    a = fingerprint(job_type="t", priority="normal", params={"a": 1, "b": {"x": [1, 2], "y": "é"}}, metadata={})
    b = fingerprint(job_type="t", priority="normal", params={"b": {"y": "é", "x": [1, 2]}, "a": 1}, metadata={})
    assert a == b
    assert len(a) == 64 and int(a, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"job_type": "u"},
        {"priority": "high"},
        {"params": {"a": 2}},
        {"params": {"a": 1, "extra": None}},
        {"metadata": {"m": 1}},
        {"params": {"a": [1]}},
    ],
)
def test_every_field_counts(change: dict[str, object]) -> None:
    base: dict[str, object] = {"job_type": "t", "priority": "normal", "params": {"a": 1}, "metadata": {}}
    assert fingerprint(**base) != fingerprint(**{**base, **change})  # type: ignore[arg-type]


def test_canonical_json_is_compact_sorted_and_keeps_unicode() -> None:
    assert canonical_json({"b": 1, "a": "ü"}) == '{"a":"ü","b":1}'


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})
