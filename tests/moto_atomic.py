"""Makes the in-process moto server's DynamoDB item operations atomic, as DynamoDB's are.

moto checks a write's condition and then applies it without a lock, so two conditional updates of one item
sent at the same moment (a claim and a cancel, a worker's verdict and the dead-letter handler's) can both pass
their conditions on the same old item, which DynamoDB never allows. One lock around each item operation of the
backend restores the guarantee that the race tests (tests/worker/test_cancel.py, tests/worker/test_worker.py)
check; a strongly consistent read also never sees a half-applied update.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

# The backend methods that read or write items (batch calls go through these).
_ITEM_OPERATIONS = ("put_item", "get_item", "update_item", "delete_item", "query", "scan", "transact_write_items")
_LOCK = threading.RLock()
_MARK = "_job_tickets_atomic"


def make_dynamodb_item_operations_atomic() -> None:
    """Idempotent: wraps each item operation of moto's DynamoDBBackend once, in this process."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in _ITEM_OPERATIONS:
        original: Callable[..., Any] = getattr(DynamoDBBackend, name)
        if getattr(original, _MARK, False):
            continue

        @functools.wraps(original)
        def atomic(*args: Any, __original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            with _LOCK:
                return __original(*args, **kwargs)

        setattr(atomic, _MARK, True)
        setattr(DynamoDBBackend, name, atomic)
