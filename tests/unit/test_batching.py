"""The coalescer behind batched SQS sends and deletes: full batches at once, partial ones after the linger."""

from __future__ import annotations

import threading

from runtime.batching import Coalescer


def test_a_partial_batch_is_due_only_after_the_linger() -> None:
    now = [0.0]
    sent: list[list[str]] = []
    done = threading.Event()

    def send(batch: list[str]) -> None:
        sent.append(batch)
        done.set()

    batches = Coalescer(send, linger_s=0.05, monotonic=lambda: now[0])
    batches.add("a")
    batches.add("b")
    assert batches.take(force=False) == []  # not due yet, fewer than ten
    assert not done.wait(0.2) and sent == []  # the thread waits for the linger too
    now[0] = 0.05
    assert done.wait(10)
    assert sent == [["a", "b"]]
    batches.close()


def test_items_go_out_in_batches_of_at_most_the_batch_size_and_in_order() -> None:
    sent: list[list[int]] = []
    batches = Coalescer(sent.append, linger_s=3600, batch_size=10)  # only a full batch or close sends
    for item in range(23):
        batches.add(item)
    batches.close()
    assert [len(batch) for batch in sent] == [10, 10, 3]
    assert [item for batch in sent for item in batch] == list(range(23))


def test_adds_after_close_are_refused() -> None:
    sent: list[list[str]] = []
    batches = Coalescer(sent.append, linger_s=3600)
    batches.add("before")
    batches.close()
    assert batches.add("after") is False
    assert sent == [["before"]]
