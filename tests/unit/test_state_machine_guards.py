"""The status machine's guards, as the worker and the DLQ handler rely on them."""

from __future__ import annotations

import pytest

from runtime.domain.job import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATUSES,
    InvalidTransition,
    JobStatus,
    can_transition,
    check_transition,
    prior_statuses,
)


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


@pytest.mark.parametrize("target", list(JobStatus))
def test_prior_statuses_are_exactly_the_states_allowed_to_move_to_the_target(target: JobStatus) -> None:
    priors = prior_statuses(target)
    assert set(priors) == {status for status in JobStatus if can_transition(status, target)}
    assert list(priors) == [status for status in JobStatus if status in priors]  # stable, declaration order
