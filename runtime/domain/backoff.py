"""Exponential backoff with jitter, capped; the random source is injectable so tests are deterministic."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

# SQS refuses a visibility timeout above 12 hours.
MAX_VISIBILITY_TIMEOUT_S = 43_200
# 2**60 seconds is far past any cap; bounding the exponent keeps the float arithmetic finite.
_MAX_EXPONENT = 60


class Jitter(StrEnum):
    NONE = "none"
    FULL = "full"  # uniform in [0, ceiling]: spreads retries best, may retry at once
    EQUAL = "equal"  # ceiling/2 + uniform in [0, ceiling/2]: never less than half the ceiling


@dataclass(frozen=True)
class Backoff:
    base_s: float
    max_s: float
    jitter: Jitter = Jitter.EQUAL
    # Returns a float in [0, 1); random.random by default, a fixed function in tests.
    rand: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_s <= 0:
            raise ValueError(f"backoff base must be positive, got {self.base_s}")
        if self.max_s < self.base_s:
            raise ValueError(f"backoff cap {self.max_s} is below the base {self.base_s}")

    def ceiling_s(self, attempt: int) -> float:
        """base * 2**(attempt-1), capped: 1 -> base, 2 -> 2*base, ..."""
        if attempt < 1:
            raise ValueError(f"attempt must be at least 1, got {attempt}")
        exponent = min(attempt - 1, _MAX_EXPONENT)
        return min(self.max_s, self.base_s * (2.0**exponent))

    def delay_s(self, attempt: int) -> float:
        ceiling = self.ceiling_s(attempt)
        if self.jitter is Jitter.NONE:
            return ceiling
        r = min(max(self.rand(), 0.0), 1.0)
        if self.jitter is Jitter.FULL:
            return ceiling * r
        half = ceiling / 2
        return half + half * r

    def visibility_delay_s(self, attempt: int) -> int:
        """The delay as a whole-second SQS visibility timeout (rounded up, within SQS's limit)."""
        return min(MAX_VISIBILITY_TIMEOUT_S, max(0, math.ceil(self.delay_s(attempt))))
