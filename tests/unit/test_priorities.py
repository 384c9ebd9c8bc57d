"""Weighted polling over the per-priority queues: the round-robin's shares (low never starved), the receive
round's fallbacks and request counts, and that each message's handle leads back to its own queue."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence

import pytest

from runtime.adapters.priority_queue import EMPTY_RECHECK_S, PriorityJobQueue
from runtime.domain.job import Priority
from runtime.domain.ports import JobMessage, ReceivedMessage
from runtime.domain.priorities import ORDER, WEIGHTS, WeightedRoundRobin
from tests.unit.fakes import FakeQueue, received

HIGH, NORMAL, LOW = Priority.HIGH, Priority.NORMAL, Priority.LOW


def test_with_every_queue_busy_each_gets_its_weight_share_interleaved() -> None:
    picker = WeightedRoundRobin()
    picks = [picker.pick(ORDER) for _ in range(100)]
    assert Counter(picks) == {HIGH: 60, NORMAL: 30, LOW: 10}
    # Smooth: every window of 10 consecutive rounds holds exactly one low round and no run of 6 highs.
    for start in range(0, 91):
        assert picks[start : start + 10].count(LOW) == 1
    assert all(picks[start : start + 4] != [HIGH] * 4 for start in range(97))


def test_low_is_never_starved_and_gets_at_least_its_weight_share() -> None:
    total = sum(WEIGHTS.values())
    for busy in ([HIGH, LOW], [NORMAL, LOW], [HIGH, NORMAL, LOW], [LOW]):
        picker = WeightedRoundRobin()
        picks = Counter(picker.pick(busy) for _ in range(700))
        assert picks[LOW] / 700 >= WEIGHTS[LOW] / total, (busy, picks)
        # The shares among the busy queues follow their weights exactly.
        busy_total = sum(WEIGHTS[priority] for priority in busy)
        assert picks == {priority: 700 * WEIGHTS[priority] // busy_total for priority in busy}


def test_a_queue_back_from_empty_brings_no_saved_up_burst() -> None:
    picker = WeightedRoundRobin()
    for _ in range(50):
        picker.pick([NORMAL, LOW])
    picks = [picker.pick(ORDER) for _ in range(10)]
    assert Counter(picks) == {HIGH: 6, NORMAL: 3, LOW: 1}


def test_bad_weights_and_empty_candidates_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WeightedRoundRobin({HIGH: 0, NORMAL: 1})
    with pytest.raises(ValueError, match="no priority"):
        WeightedRoundRobin().pick([])


class CountingQueue(FakeQueue):
    """A FakeQueue that records each receive's wait."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.waits: list[int] = []

    def receive(self, *, max_messages: int, wait_s: int, visibility_timeout_s: int) -> Sequence[ReceivedMessage]:
        self.waits.append(wait_s)
        return super().receive(max_messages=max_messages, wait_s=wait_s, visibility_timeout_s=visibility_timeout_s)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _queues(backlog: dict[Priority, int]) -> dict[Priority, CountingQueue]:
    queues = {priority: CountingQueue(priority.value) for priority in ORDER}
    for priority, count in backlog.items():
        queues[priority].inbox.extend(
            received(f"{priority.value}-{index}", handle=f"h{index}") for index in range(count)
        )
    return queues


def _receive(queue: PriorityJobQueue) -> Sequence[ReceivedMessage]:
    return queue.receive(max_messages=10, wait_s=20, visibility_timeout_s=30)


def test_all_queues_full_rounds_follow_the_weights_one_request_each() -> None:
    queues = _queues({HIGH: 1000, NORMAL: 1000, LOW: 1000})
    composite = PriorityJobQueue(queues)
    rounds = [_receive(composite) for _ in range(20)]
    by_priority = Counter(message.message.priority for batch in rounds for message in batch if message.message)
    assert by_priority == {HIGH: 120, NORMAL: 60, LOW: 20}
    assert sum(len(queue.waits) for queue in queues.values()) == 20  # one ReceiveMessage per round
    assert all(wait == 0 for queue in queues.values() for wait in queue.waits)


def test_an_empty_pick_falls_back_with_short_polls_and_sits_out_until_rechecked() -> None:
    clock = Clock()
    queues = _queues({LOW: 300})
    composite = PriorityJobQueue(queues, monotonic=clock)
    first = _receive(composite)
    assert [message.message.priority for message in first if message.message] == [LOW] * 10
    # High and normal were picked first, came back empty (short polls), then low.
    assert (queues[HIGH].waits, queues[NORMAL].waits, queues[LOW].waits) == ([0], [0], [0])
    for _ in range(5):
        _receive(composite)
    assert (len(queues[HIGH].waits), len(queues[NORMAL].waits), len(queues[LOW].waits)) == (1, 1, 6)
    # A high message arrives; after the recheck delay high is polled again, and its message goes first.
    queues[HIGH].inbox.append(received("urgent", handle="u1"))
    clock.now += EMPTY_RECHECK_S
    assert [message.message.job_id for message in _receive(composite) if message.message] == ["urgent"]


def test_all_empty_long_polls_every_queue_at_once_then_stays_on_long_polls() -> None:
    queues = _queues({})
    composite = PriorityJobQueue(queues)
    assert _receive(composite) == []
    # Three short polls found nothing, then one long poll per queue went out together.
    assert all(queue.waits[:2] == [0, 20] for queue in queues.values())
    assert _receive(composite) == []
    # Idle: no short polls any more, only long polls (a queue whose poll was still out gets no second one).
    assert all(set(queue.waits[2:]) <= {20} for queue in queues.values())
    queues[NORMAL].inbox.append(received("late", handle="l1"))
    late = [message.message.job_id for _ in range(3) for message in _receive(composite) if message.message]
    assert late == ["late"]


def test_under_a_light_load_each_message_costs_one_long_poll_and_no_short_poll() -> None:
    clock = Clock()
    queues = _queues({})
    composite = PriorityJobQueue(queues, monotonic=clock)
    assert _receive(composite) == []  # idle: three short polls, then the long polls
    for index in range(5):
        queues[NORMAL].inbox.append(received(f"job-{index}", handle=f"h{index}"))
        assert [message.message.job_id for message in _receive(composite) if message.message] == [f"job-{index}"]
    # The long poll that brought one message (of ten asked for) drained normal: the next round waits on a long
    # poll there at once, without a short poll that would find nothing first.
    assert queues[NORMAL].waits == [0] + [20] * 6


class HeldPollQueue(CountingQueue):
    """A long poll that waits until released, as SQS's does until a message arrives."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = threading.Event()

    def receive(self, *, max_messages: int, wait_s: int, visibility_timeout_s: int) -> Sequence[ReceivedMessage]:
        self.waits.append(wait_s)
        if wait_s > 0:
            self.release.wait(10)
        return FakeQueue.receive(
            self, max_messages=max_messages, wait_s=wait_s, visibility_timeout_s=visibility_timeout_s
        )


def test_a_long_poll_that_brings_messages_returns_at_once_and_the_others_stay_out() -> None:
    queues = {priority: HeldPollQueue(priority.value) for priority in ORDER}
    composite = PriorityJobQueue(queues)
    rounds: list[Sequence[ReceivedMessage]] = []
    waiting = threading.Thread(target=lambda: rounds.append(_receive(composite)))
    waiting.start()  # all empty: short polls, then the three long polls go out and wait
    for _ in range(500):
        if all(queue.waits == [0, 20] for queue in queues.values()):
            break
        threading.Event().wait(0.01)
    # Low jobs arrive: low's poll answers; high's and normal's keep waiting like an empty queue's long poll.
    queues[LOW].inbox.extend(received(f"low-{index}", handle=f"l{index}") for index in range(30))
    queues[LOW].release.set()
    waiting.join(10)
    (first,) = rounds
    assert {message.message.priority for message in first if message.message} == {LOW}
    # Busy on low: the next rounds poll low only (high and normal still have their long polls out)...
    second = _receive(composite)
    assert {message.message.priority for message in second if message.message} == {LOW}
    assert (queues[HIGH].waits, queues[NORMAL].waits) == ([0, 20], [0, 20])
    # ...and a high message that the still-open long poll brings goes first in the round after.
    queues[HIGH].inbox.append(received("urgent", handle="u1"))
    queues[HIGH].release.set()
    for _ in range(100):
        if composite._long_polls[HIGH].done():
            break
        threading.Event().wait(0.01)
    assert [message.message.job_id for message in _receive(composite) if message.message] == ["urgent"]
    queues[NORMAL].release.set()


def test_handles_lead_back_to_their_queue_and_sends_follow_the_priority() -> None:
    queues = _queues({HIGH: 1, LOW: 1})
    composite = PriorityJobQueue(queues)
    handles = [message.receipt_handle for message in _receive(composite)]
    handles += [message.receipt_handle for message in _receive(composite)]
    assert sorted(handles) == ["high:h0", "low:h0"]
    composite.delete_batch(handles)
    composite.change_visibility("high:h0", 5)
    composite.change_visibility_batch(["low:h0"], 0)
    assert (queues[HIGH].deleted, queues[LOW].deleted, queues[NORMAL].deleted) == (["h0"], ["h0"], [])
    assert queues[HIGH].visibility == [("h0", 5)]
    assert queues[LOW].batch_visibility == [(("h0",), 0)]
    composite.send(JobMessage("j1", "t", HIGH))
    composite.send(JobMessage("j2", "t"))
    assert [m.job_id for m in queues[HIGH].sent] == ["j1"] and [m.job_id for m in queues[NORMAL].sent] == ["j2"]
    with pytest.raises(ValueError, match="not a priority queue receipt handle"):
        composite.delete_batch(["urgent:h0"])


def test_send_many_splits_by_priority_and_reports_unsent_by_the_callers_index() -> None:
    queues = _queues({})
    queues[LOW].fail_send = True
    composite = PriorityJobQueue(queues)
    messages = [JobMessage(f"j{index}", "t", priority) for index, priority in enumerate([HIGH, LOW, NORMAL, LOW, HIGH])]
    assert composite.send_many(messages) == frozenset({1, 3})
    assert [m.job_id for m in queues[HIGH].sent] == ["j0", "j4"]
    assert [m.job_id for m in queues[NORMAL].sent] == ["j2"]
    assert queues[HIGH].send_calls == 1  # one batch per queue


def test_a_priority_without_its_own_queue_sends_to_the_normal_one() -> None:
    normal = CountingQueue("normal")
    composite = PriorityJobQueue({NORMAL: normal})
    composite.send(JobMessage("j1", "t", HIGH))
    assert [m.job_id for m in normal.sent] == ["j1"]
    with pytest.raises(ValueError, match="normal"):
        PriorityJobQueue({HIGH: normal})
