"""The one wire format for moments (runtime/domain/times.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from runtime.domain.times import iso, parse_iso


def test_iso_is_utc_with_milliseconds_and_z() -> None:
    moment = datetime(2026, 1, 2, 4, 4, 5, 678901, tzinfo=timezone(timedelta(hours=1)))
    assert iso(moment) == "2026-01-02T03:04:05.678Z"
    assert iso(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"


def test_parse_iso_reads_what_iso_writes() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    parsed = parse_iso(iso(moment))
    assert parsed == moment and parsed.utcoffset() == timedelta(0)
