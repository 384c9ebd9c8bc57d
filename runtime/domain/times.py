"""The one wire format for moments: RFC 3339 in UTC with milliseconds and a `Z` (2026-01-02T03:04:05.678Z),
used by the API's documents, the jobs table's items and the log lines alike."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
