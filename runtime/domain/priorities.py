"""How priorities are honored: one queue per priority, and weighted polling over them.

Every priority has its own SQS queue (same redrive policy to the one dead-letter queue, same visibility and
retention). The worker's receive loop picks the queue of each receive round by a smooth weighted round-robin
(the nginx algorithm) over the queues that have messages, with the weights below: when high, normal and low
all have messages, ten rounds go 6 to high, 3 to normal and 1 to low, interleaved (high, normal, high, low, ...
never six highs in a row followed by the rest). A queue without messages takes no part, so its share goes to
the others in proportion to their weights: with high and low busy, low gets 1 round in 7. `low` is never
starved: whenever it has messages it gets at least its weight's share, 1 round in 10.

`high` jobs start before waiting `normal` ones in practice because high rounds come first and most often,
and a round takes up to 10 messages, so a high message waits at most a few rounds behind any backlog.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from runtime.domain.job import Priority

# Highest first: the order for fallbacks and tie-breaks.
ORDER: Final = (Priority.HIGH, Priority.NORMAL, Priority.LOW)
WEIGHTS: Final[Mapping[Priority, int]] = MappingProxyType({Priority.HIGH: 6, Priority.NORMAL: 3, Priority.LOW: 1})


class WeightedRoundRobin:
    """Smooth weighted round-robin: each pick adds every candidate's weight to its credit, takes the candidate
    with the most credit (ties go to the higher priority) and charges it the candidates' total weight. A
    priority that is not a candidate loses its credit, so a queue that was empty for a while does not come
    back with a burst of saved-up rounds. Not thread-safe: the worker's one receive thread owns it."""

    def __init__(self, weights: Mapping[Priority, int] = WEIGHTS) -> None:
        bad = {priority.value: weight for priority, weight in weights.items() if weight < 1}
        if bad:
            raise ValueError(f"priority weights must be at least 1: {bad}")
        self._weights = dict(weights)
        self._credit = dict.fromkeys(self._weights, 0)

    def pick(self, candidates: Iterable[Priority]) -> Priority:
        wanted = set(candidates)
        chosen = [priority for priority in ORDER if priority in wanted and priority in self._weights]
        if not chosen:
            raise ValueError("no priority to pick from")
        for priority in self._credit:
            if priority in chosen:
                self._credit[priority] += self._weights[priority]
            else:
                self._credit[priority] = 0
        best = max(chosen, key=lambda priority: self._credit[priority])  # first of equals: ORDER wins ties
        self._credit[best] -= sum(self._weights[priority] for priority in chosen)
        return best
