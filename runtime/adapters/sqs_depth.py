"""The priority queues' depths: one GetQueueAttributes each. The console's stats (runtime/domain/stats.py) and the
republisher's backlog check (runtime/worker/republisher.py) read them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from runtime.adapters.sqs_queue import SqsJobQueue
from runtime.domain.job import Priority
from runtime.domain.priorities import ORDER
from runtime.domain.stats import QueueDepth

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class SqsQueueDepths:
    """`urls` maps each priority with a queue of its own to that queue (Settings.priority_queue_urls)."""

    def __init__(self, client: SQSClient, urls: Mapping[Priority, str]) -> None:
        self._queues = {priority: SqsJobQueue(client, urls[priority]) for priority in ORDER if priority in urls}

    def depths(self) -> Sequence[QueueDepth]:
        depths = []
        for priority, queue in self._queues.items():
            visible, in_flight, delayed = queue.depth()
            depths.append(QueueDepth(priority=priority, visible=visible, in_flight=in_flight, delayed=delayed))
        return depths
