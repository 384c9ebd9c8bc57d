"""Scheduled jobs: when a job may start (`runAt`), how its message waits for that moment, and where the
republisher's pending marker sits meanwhile.

A job due within the delay window (SQS's per-message DelaySeconds, at most 900 s) is published at submit with
the remaining delay. A later one is not published at submit: its pending marker is set to `runAt - window`, so
the republisher's sweep (which publishes PENDING jobs whose marker is older than republish_after_s) releases it
once it is inside the window, with the delay still left. Once a scheduled job's message is out, its marker is
`runAt`: a lost message is published again within the no-job-lost bound after `runAt`, as for any job.
The worker's claim refuses a job before its `runAt` (the store's condition), so nothing starts early even when a
message arrives early."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from runtime.domain.times import iso

# The contract's limit: `runAt` at most this far ahead, `delaySeconds` at most this.
MAX_SCHEDULE_AHEAD_S: Final = 7 * 24 * 3600
# SQS's ceiling for a message's DelaySeconds: the default delay window (Settings.schedule_delay_window_s).
SQS_MAX_DELAY_S: Final = 900
RUN_AT_FIELD: Final = "runAt"
# fromisoformat alone takes forms RFC 3339 does not (no offset, week dates, basic format): the shape first, as JSON
# Schema's `date-time` format (RFC 3339 section 5.6: a `T` between date and time, an offset always).
_RFC3339: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,32})?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)
DELAY_FIELD: Final = "delaySeconds"


class ScheduleRejected(Exception):
    """A schedule the contract does not take (too far ahead); `field` names the request field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ScheduleRequest:
    """What the caller asked for: an absolute `run_at` (aware, millisecond precision) or a `delay_s` from the
    submit. Exactly one is set."""

    run_at: datetime | None = None
    delay_s: int | None = None

    def __post_init__(self) -> None:
        if (self.run_at is None) == (self.delay_s is None):
            raise ValueError("a schedule is a run_at or a delay_s, not both or neither")

    def fingerprint_fields(self) -> dict[str, Any]:
        """What the idempotency fingerprint adds for this schedule: the request as given (a replay of the same
        `delaySeconds` is the same body, though its moment differs)."""
        if self.run_at is not None:
            return {RUN_AT_FIELD: iso(self.run_at)}
        return {DELAY_FIELD: self.delay_s}

    def run_at_from(self, now: datetime) -> datetime:
        """The moment the job may start, for a submit at `now`: a past `run_at` means now. ScheduleRejected
        when `run_at` is more than MAX_SCHEDULE_AHEAD_S ahead."""
        if self.delay_s is not None:
            return now + timedelta(seconds=self.delay_s)
        assert self.run_at is not None
        if self.run_at - now > timedelta(seconds=MAX_SCHEDULE_AHEAD_S):
            raise ScheduleRejected(
                RUN_AT_FIELD,
                f"must be at most {MAX_SCHEDULE_AHEAD_S} s (7 days) ahead, got {iso(self.run_at)}",
            )
        return max(self.run_at, now)


@dataclass(frozen=True)
class DelayWindow:
    """How far ahead a message may be sent with a delay (`window_s`, at most SQS_MAX_DELAY_S)."""

    window_s: int = SQS_MAX_DELAY_S

    def message_delay_s(self, run_at: datetime | None, now: datetime) -> int | None:
        """The DelaySeconds of a message for a job that may start at `run_at`, sent at `now`; None when `run_at`
        is beyond the window (nothing is sent yet). Rounded up: SQS delays in whole seconds, never early."""
        if run_at is None:
            return 0
        remaining_s = math.ceil((run_at - now).total_seconds())
        if remaining_s > self.window_s:
            return None
        return max(0, remaining_s)

    def pending_marker(self, run_at: datetime | None, now: datetime) -> datetime:
        """Where the republisher's pending marker goes for a job published (or held back) at `now`: `now` for an
        unscheduled job; `run_at` once its message is out; `run_at - window` while it is held back."""
        if run_at is None:
            return now
        if self.message_delay_s(run_at, now) is None:
            return run_at - timedelta(seconds=self.window_s)
        return max(run_at, now)


def publish_delay_s(run_at: datetime | None, pending_since: datetime | None, now: datetime) -> int | None:
    """The DelaySeconds of a job's message sent at `now`, as its pending marker (set by `pending_marker`)
    decided: None while the job is held back for the republisher (its marker before its run_at), else the time left
    until `run_at` (0 when due). Deciding by the marker, not the clock, keeps a send a moment after the job was
    written from disagreeing with the marker written with it."""
    if run_at is None:
        return 0
    if pending_since is not None and pending_since < run_at:
        return None
    return max(0, math.ceil((run_at - now).total_seconds()))


def parse_run_at(text: str) -> datetime:
    """An RFC 3339 date-time with its offset (`2026-01-02T03:04:05Z`, `...+01:00`, fractions allowed), as an
    aware datetime cut to milliseconds; ValueError naming the value otherwise."""
    if not _RFC3339.fullmatch(text):
        raise ValueError(f"must be an rfc 3339 date-time with a timezone (2026-01-02T03:04:05Z), got {text!r}")
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        raise ValueError(f"not a valid date-time: {text!r}") from None
    return moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000)
