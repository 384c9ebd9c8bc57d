"""The status machine's guards, as the worker and the DLQ handler rely on them."""

from __future__ import annotations

import pytest

from runtime.domain.job import ALLOWED_TRANSITIONS, TERMINAL_STATUSES, InvalidTransition, JobStatus, check_transition


def test_terminal_states_never_move_except_the_manual_retry() -> None:
    assert ALLOWED_TRANSITIONS[JobStatus.SUCCEEDED] == frozenset()
    assert ALLOWED_TRANSITIONS[JobStatus.FAILED_FINAL] == frozenset({JobStatus.PENDING})


@pytest.mark.parametrize("status", [s for s in JobStatus if s not in TERMINAL_STATUSES])
def test_every_non_terminal_state_can_be_dead_lettered(status: JobStatus) -> None:
    check_transition(status, JobStatus.FAILED_FINAL)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (JobStatus.SUCCEEDED, JobStatus.PROCESSING),
        (JobStatus.SUCCEEDED, JobStatus.FAILED_FINAL),
        (JobStatus.FAILED_FINAL, JobStatus.PROCESSING),
        (JobStatus.PENDING, JobStatus.SUCCEEDED),
        (JobStatus.FAILED, JobStatus.SUCCEEDED),
    ],
)
def test_moves_without_the_expected_prior_state_are_refused(current: JobStatus, target: JobStatus) -> None:
    with pytest.raises(InvalidTransition, match=f"from {current} to {target}"):
        check_transition(current, target)
