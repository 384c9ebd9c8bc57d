"""Small statistics for the benchmark: percentiles, medians of repetitions, and rate summaries."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (no interpolation): the smallest value with at least `fraction` of the data
    at or below it, so p99 of 500 samples is the 495th smallest."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered))
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True)
class LatencySummary:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def row(self) -> str:
        return (
            f"p50 {self.p50_ms:7.1f} ms  p95 {self.p95_ms:7.1f} ms  "
            f"p99 {self.p99_ms:7.1f} ms  max {self.max_ms:7.1f} ms"
        )


def summarize_latencies(seconds: Sequence[float]) -> LatencySummary:
    ms = [value * 1000.0 for value in seconds]
    return LatencySummary(
        count=len(ms),
        p50_ms=percentile(ms, 0.50),
        p95_ms=percentile(ms, 0.95),
        p99_ms=percentile(ms, 0.99),
        max_ms=max(ms),
    )


@dataclass(frozen=True)
class Repeated:
    """Repetitions of one figure: the median is what the tables show, min/max show the noise."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> str:
        if len(self.values) == 1:
            return "n=1"
        return f"n={len(self.values)} min {min(self.values):.3g} max {max(self.values):.3g}"


def median_of(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return statistics.median(values)
