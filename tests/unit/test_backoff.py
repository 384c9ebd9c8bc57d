"""Exponential backoff with jitter: doubling, cap, jitter bounds, SQS visibility rounding."""

from __future__ import annotations

import pytest

from runtime.domain.backoff import MAX_VISIBILITY_TIMEOUT_S, Backoff, Jitter


def test_ceiling_doubles_per_attempt_up_to_the_cap() -> None:
    backoff = Backoff(2.0, 20.0, Jitter.NONE)
    assert [backoff.delay_s(n) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    assert backoff.delay_s(10_000) == 20.0  # no overflow for absurd attempt numbers


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 0.0), (0.5, 4.0), (0.999, 7.992)])
def test_full_jitter_spans_zero_to_the_ceiling(rand: float, expected: float) -> None:
    assert Backoff(2.0, 60.0, Jitter.FULL, rand=lambda: rand).delay_s(3) == pytest.approx(expected)


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 4.0), (0.5, 6.0), (0.999, 7.996)])
def test_equal_jitter_never_goes_below_half_the_ceiling(rand: float, expected: float) -> None:
    assert Backoff(2.0, 60.0, Jitter.EQUAL, rand=lambda: rand).delay_s(3) == pytest.approx(expected)


def test_visibility_delay_rounds_up_and_respects_the_sqs_limit() -> None:
    assert Backoff(1.5, 10.0, Jitter.NONE).visibility_delay_s(1) == 2
    assert Backoff(0.2, 0.2, Jitter.FULL, rand=lambda: 0.0).visibility_delay_s(1) == 0
    assert Backoff(60_000.0, 100_000.0, Jitter.NONE).visibility_delay_s(2) == MAX_VISIBILITY_TIMEOUT_S


def test_random_source_out_of_range_is_clamped() -> None:
    assert Backoff(2.0, 8.0, Jitter.FULL, rand=lambda: 7.0).delay_s(1) == 2.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (5.0, 1.0)])
def test_bad_configuration_is_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(base, cap)


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="attempt must be at least 1, got 0"):
        Backoff(1.0, 2.0).delay_s(0)
