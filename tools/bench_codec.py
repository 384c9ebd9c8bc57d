"""Measures the jobs table's attribute codec (runtime/adapters/dynamodb/codec.py) against boto3's
TypeSerializer/TypeDeserializer on realistic job items, both directions, side by side in one run.

    .venv/bin/python -m tools.bench_codec

Each variant turns the same plain item (attribute name -> JSON value, as job_to_item has it before encoding)
into DynamoDB attribute values and back. boto3's serializer refuses floats and its deserializer returns
Decimal for every number, so its variant converts floats to Decimal before and numbers back after: that is
what the store would have to do with it to give jobs their JSON params and results unchanged.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from runtime.adapters.dynamodb.codec import from_attr, job_to_item, to_attr
from runtime.domain.job import Job, JobError, JobStatus, Priority

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def sample_jobs() -> list[Job]:
    """A submitted document job, a finished one with a result, a failed one with an error."""
    t0 = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    pending = Job(
        job_id="0b7c5e8e-6d1f-4f0a-9a43-2f0d3b1c9e11",
        status=JobStatus.PENDING,
        job_type="process_document",
        priority=Priority.NORMAL,
        params={
            "source": "s3://job-tickets-documents/input/2026/03/01/report-0042.txt",
            "destination": "s3://job-tickets-documents/output/2026/03/01/report-0042.json",
            "language": "en",
            "maxPages": 40,
            "ocr": False,
        },
        metadata={"owner": "team-analytics", "ticket": "OPS-1234", "tags": ["monthly", "finance"]},
        created_at=t0,
        updated_at=t0,
        trace_id="1-67c2f6c0-0123456789abcdef01234567",
        fingerprint="f" * 64,
        idempotency_key="team-analytics#report-0042-2026-03",
        transitions={"PENDING": t0},
        pending_since=t0,
        expires_at=int(t0.timestamp()) + 30 * 86_400,
    )
    done = pending.replace(
        status=JobStatus.SUCCEEDED,
        attempts=1,
        pending_since=None,
        transitions={"PENDING": t0, "PROCESSING": t0 + timedelta(seconds=2), "SUCCEEDED": t0 + timedelta(seconds=9)},
        result={
            "pages": 37,
            "words": 18234,
            "durationSeconds": 6.842,
            "confidence": 0.9731,
            "sections": [{"title": "Summary", "words": 412}, {"title": "Figures", "words": 1880}],
            "output": "s3://job-tickets-documents/output/2026/03/01/report-0042.json",
        },
    )
    failed = pending.replace(
        status=JobStatus.FAILED,
        attempts=2,
        pending_since=None,
        lease_expires_at=None,
        error=JobError("dependency_timeout", "the document store did not answer within 10 s"),
        transitions={"PENDING": t0, "PROCESSING": t0 + timedelta(seconds=40), "FAILED": t0 + timedelta(seconds=51)},
    )
    return [pending, done, failed]


def plain(job: Job) -> dict[str, Any]:
    """The item as JSON values (what either codec encodes)."""
    return {name: from_attr(value) for name, value in job_to_item(job).items()}


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    return value


def _numbers(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def encode_hand(item: dict[str, Any]) -> dict[str, Any]:
    return {name: to_attr(value) for name, value in item.items()}


def decode_hand(item: dict[str, Any]) -> dict[str, Any]:
    return {name: from_attr(value) for name, value in item.items()}


def encode_boto3(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _SERIALIZER.serialize(_decimals(value)) for name, value in item.items()}


def decode_boto3(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _numbers(_DESERIALIZER.deserialize(value)) for name, value in item.items()}


def side_by_side(
    hand: Callable[[dict[str, Any]], Any],
    boto: Callable[[dict[str, Any]], Any],
    items: list[dict[str, Any]],
    rounds: int,
    repeats: int,
) -> tuple[float, float]:
    """Microseconds per item of each, best of `repeats`; the two alternate so both see the same machine load."""

    def timed(function: Callable[[dict[str, Any]], Any]) -> float:
        def run() -> None:
            for item in items:
                function(item)

        return timeit.timeit(run, number=rounds) / (rounds * len(items)) * 1e6

    best_hand = best_boto = float("inf")
    for _ in range(repeats):
        best_hand = min(best_hand, timed(hand))
        best_boto = min(best_boto, timed(boto))
    return best_hand, best_boto


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500, help="passes over the sample items per timing")
    parser.add_argument("--repeats", type=int, default=15, help="timings per variant (the best counts)")
    args = parser.parse_args()
    plains = [plain(job) for job in sample_jobs()]
    encoded = [encode_hand(item) for item in plains]
    # Both variants must agree, or the comparison means nothing.
    assert [encode_boto3(item) for item in plains] == encoded, "the codecs encode differently"
    assert [decode_boto3(item) for item in encoded] == plains, "boto3's variant decodes differently"
    assert [decode_hand(item) for item in encoded] == plains, "the hand-written codec decodes differently"
    rows = [
        ("encode", *side_by_side(encode_hand, encode_boto3, plains, args.rounds, args.repeats)),
        ("decode", *side_by_side(decode_hand, decode_boto3, encoded, args.rounds, args.repeats)),
    ]
    print(f"{'':8}{'hand-written':>16}{'boto3 Type(De)Serializer':>28}{'boto3 / hand':>16}")
    for name, hand, boto in rows:
        print(f"{name:8}{hand:>13.1f} us{boto:>25.1f} us{boto / hand:>15.2f}x")


if __name__ == "__main__":
    main()
