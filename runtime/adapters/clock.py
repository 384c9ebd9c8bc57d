"""The real clock of the Clock port (UTC, aware datetimes)."""

from __future__ import annotations

from datetime import UTC, datetime


class UtcClock:
    def now(self) -> datetime:
        return datetime.now(UTC)
