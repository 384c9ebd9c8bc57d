"""The built-in job types against an in-memory ObjectStore: real, deterministic work and clear field errors."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any

import pytest
from pydantic import ValidationError

from benchmarks.bench_pricing import item_size, write_units
from runtime.adapters.dynamodb.codec import job_to_item
from runtime.domain.job import JobStatus, Progress
from runtime.domain.progress import ProgressReport
from runtime.job_types.generate_report import BUILD_SHARE
from runtime.job_types.process_document import READ_CHUNK_BYTES, READ_SHARE
from runtime.job_types.registry import JobContext, PermanentJobError, get_job_type, job_type_names
from tests.unit.fakes import T0, InMemoryObjects, make_job

DOC = "The quick brown fox.\nThe lazy dog sleeps; the fox runs.\n"


def run(
    name: str, params: dict[str, Any], objects: InMemoryObjects, reported: list[Progress] | None = None
) -> dict[str, Any]:
    """Runs the type's handler; each progress report it makes is appended to `reported`."""
    job_type = get_job_type(name)
    assert job_type is not None
    progress = ProgressReport(on_report=lambda _, value: reported.append(value) if reported is not None else None)
    context = JobContext(job_id="job-1", attempt=1, trace_id="trace-1", objects=objects, progress=progress)
    return job_type.handler(job_type.parse_params(params), context)


def field_errors(name: str, params: dict[str, Any]) -> str:
    job_type = get_job_type(name)
    assert job_type is not None
    with pytest.raises(ValidationError) as caught:
        job_type.parse_params(params)
    return str(caught.value)


def test_the_three_builtin_types_are_registered() -> None:
    assert {"process_document", "generate_report", "transform_data"} <= set(job_type_names())


def test_process_document_writes_a_summary_and_returns_it() -> None:
    objects = InMemoryObjects({"s3://docs/in/a.txt": DOC.encode()})
    result = run("process_document", {"source": "s3://docs/in/a.txt", "destination": "s3://docs/out/a.json"}, objects)
    summary = result["summary"]
    assert set(result) == {"summary"} and "top_words" not in summary  # both stay in S3 only
    assert summary["size_bytes"] == len(DOC.encode()) and summary["sha256"] == hashlib.sha256(DOC.encode()).hexdigest()
    assert (summary["lines"], summary["words"], summary["characters"]) == (2, 11, len(DOC))
    assert summary["content_type"] == "text/plain"
    written = json.loads(objects.objects["s3://docs/out/a.json"])
    assert written["summary"]["top_words"][:2] == [{"word": "the", "count": 3}, {"word": "fox", "count": 2}]
    assert written["summary"] == summary | {"top_words": written["summary"]["top_words"]}
    assert written["source"] == "s3://docs/in/a.txt"
    assert objects.content_types["s3://docs/out/a.json"] == "application/json"
    # Deterministic: the same input gives byte-identical output.
    again = InMemoryObjects({"s3://docs/in/a.txt": DOC.encode()})
    run("process_document", {"source": "s3://docs/in/a.txt", "destination": "s3://docs/out/a.json"}, again)
    assert again.objects["s3://docs/out/a.json"] == objects.objects["s3://docs/out/a.json"]


def test_a_completed_process_document_item_stays_under_one_kb() -> None:
    # A realistic small job: uuid job id, X-Ray style trace id, bucket paths like the all-in-one's.
    params = {
        "source": "s3://job-tickets-local-documents-000000000000/in/report-2025-03-01.txt",
        "destination": "s3://job-tickets-local-documents-000000000000/out/report-2025-03-01.json",
    }
    objects = InMemoryObjects({params["source"]: (DOC * 20).encode()})
    result = run("process_document", params, objects)
    done = make_job(
        "0b7c6b0e-8f1e-4a57-9d5c-3f2a1e4b6c7d",
        job_type="process_document",
        params=params,
        trace_id="1-67c2f6c0-0123456789abcdef01234567",
        fingerprint="f" * 64,
        status=JobStatus.SUCCEEDED,
        attempts=1,
        result=result,
        pending_since=None,
        transitions={"PENDING": T0, "PROCESSING": T0, "SUCCEEDED": T0},
        expires_at=int(T0.timestamp()) + 30 * 86_400,
        progress=Progress(1.0, "summary written", T0),  # what the handler reports last
    )
    size = item_size(job_to_item(done))
    assert size < 1024, size
    assert write_units(size) == 1


def test_process_document_reports_progress_by_bytes_as_it_reads_a_large_object() -> None:
    data = b"word " * (READ_CHUNK_BYTES // 2)  # 2.5 chunks
    objects = InMemoryObjects({"s3://docs/big.txt": data})
    reported: list[Progress] = []
    result = run(
        "process_document", {"source": "s3://docs/big.txt", "destination": "s3://docs/big.json"}, objects, reported
    )
    assert result["summary"]["size_bytes"] == len(data)
    fractions = [progress.fraction for progress in reported]
    # One report per chunk read, by bytes, then the summary's write.
    assert fractions == pytest.approx(
        [READ_SHARE * READ_CHUNK_BYTES / len(data), READ_SHARE * 2 * READ_CHUNK_BYTES / len(data), READ_SHARE, 1.0]
    )
    assert reported[1].message == f"read {2 * READ_CHUNK_BYTES} of {len(data)} bytes"
    assert reported[-1].message == "summary written"


def test_process_document_summarises_binary_content() -> None:
    objects = InMemoryObjects({"s3://docs/img.png": b"\x89PNG\r\n\x1a\n\xff\xfe"})
    summary = run("process_document", {"source": "s3://docs/img.png", "destination": "s3://docs/img.json"}, objects)[
        "summary"
    ]
    assert summary["content_type"] == "image/png" and summary["words"] is None and summary["size_bytes"] == 10


def test_process_document_missing_source_is_a_permanent_error_naming_it() -> None:
    with pytest.raises(PermanentJobError) as caught:
        run(
            "process_document", {"source": "s3://docs/nope.txt", "destination": "s3://docs/out.json"}, InMemoryObjects()
        )
    assert caught.value.code == "source_not_found" and "s3://docs/nope.txt" in caught.value.message


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"source": "http://docs/a", "destination": "s3://docs/b"}, "source"),
        ({"source": "s3://Docs/a", "destination": "s3://docs/b"}, "bad bucket name"),
        ({"source": "s3://docs/", "destination": "s3://docs/b"}, "missing object key"),
        ({"source": "s3://docs/a", "destination": "s3://docs/a"}, "destination must differ"),
        ({"source": "s3://docs/a"}, "destination"),
        ({"source": "s3://docs/a", "destination": "s3://docs/b", "extra": 1}, "extra"),
    ],
)
def test_process_document_bad_params_name_the_field(params: dict[str, Any], fragment: str) -> None:
    assert fragment in field_errors("process_document", params)


REPORT = {
    "title": "Sales by region",
    "rows": [
        {"region": "west", "amount": 10},
        {"region": "east", "amount": 2.5},
        {"region": "west", "amount": 30},
        {"region": "east", "amount": 7.5},
        {"region": "north", "amount": 1},
    ],
    "group_by": "region",
    "metric": "amount",
    "destination": "s3://reports/sales.json",
}


def test_generate_report_aggregates_per_group_as_json() -> None:
    objects = InMemoryObjects()
    result = run("generate_report", REPORT, objects)
    report = json.loads(objects.objects["s3://reports/sales.json"])
    assert [g["group"] for g in report["groups"]] == ["east", "north", "west"]
    assert report["groups"][0] == {"group": "east", "count": 2, "sum": 10, "min": 2.5, "max": 7.5, "mean": 5}
    assert report["groups"][2] == {"group": "west", "count": 2, "sum": 40, "min": 10, "max": 30, "mean": 20}
    assert result["total"] == {"count": 5, "sum": 51, "min": 1, "max": 30, "mean": 10.2}
    assert (result["rows"], result["groups"], result["format"]) == (5, 3, "json")


def test_generate_report_reports_progress_by_rows_while_it_builds_the_report() -> None:
    reported: list[Progress] = []
    run("generate_report", REPORT, InMemoryObjects(), reported)
    rows = len(REPORT["rows"])
    fractions = [progress.fraction for progress in reported]
    assert fractions == pytest.approx([BUILD_SHARE * index / rows for index in range(rows)] + [BUILD_SHARE, 1.0])
    assert reported[2].message == f"2 of {rows} rows aggregated" and reported[-1].message == "report written"


def test_generate_report_as_csv() -> None:
    objects = InMemoryObjects()
    run("generate_report", {**REPORT, "format": "csv", "destination": "s3://reports/sales.csv"}, objects)
    rows = list(csv.reader(io.StringIO(objects.objects["s3://reports/sales.csv"].decode())))
    assert rows[0] == ["region", "count", "sum", "min", "max", "mean"]
    assert rows[1] == ["east", "2", "10", "2.5", "7.5", "5"]
    assert rows[-1] == ["TOTAL", "5", "51", "1", "30", "10.2"]
    assert objects.content_types["s3://reports/sales.csv"] == "text/csv"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"rows": []}, "rows"),
        ({"rows": [{"region": "west", "amount": "ten"}]}, "rows[0].amount must be a finite number"),
        ({"rows": [{"amount": 1}]}, "rows[0] has no group_by field 'region'"),
        ({"format": "xml"}, "format"),
        ({"title": ""}, "title"),
    ],
)
def test_generate_report_bad_params_name_the_field(change: dict[str, Any], fragment: str) -> None:
    assert fragment in field_errors("generate_report", {**REPORT, **change})


RECORDS = [
    {"name": " ada ", "age": "36", "city": "london"},
    {"name": "alan", "age": "41", "city": "wilmslow"},
    {"name": "grace", "age": "85", "city": "new york"},
    {"name": "alan", "age": "41", "city": "wilmslow"},
    {"name": "edsger", "city": "austin"},
]


def test_transform_data_applies_the_pipeline_in_order() -> None:
    params = {
        "records": RECORDS,
        "operations": [
            {"op": "strip", "fields": ["name"]},
            {"op": "dedupe"},
            {"op": "default", "field": "age", "value": "0"},
            {"op": "cast", "field": "age", "to": "int"},
            {"op": "filter", "field": "age", "cmp": "lt", "value": 80},
            {"op": "uppercase", "fields": ["city"]},
            {"op": "rename", "fields": {"name": "person"}},
            {"op": "sort", "by": ["age"], "descending": True},
            {"op": "select", "fields": ["person", "age", "city"]},
        ],
    }
    result = run("transform_data", params, InMemoryObjects())
    assert result["records"] == [
        {"person": "alan", "age": 41, "city": "WILMSLOW"},
        {"person": "ada", "age": 36, "city": "LONDON"},
        {"person": "edsger", "age": 0, "city": "AUSTIN"},
    ]
    assert (result["input_count"], result["output_count"]) == (5, 3)
    assert [step["out"] for step in result["steps"]] == [5, 4, 4, 4, 3, 3, 3, 3, 3]


def test_transform_data_writes_json_lines_to_a_destination() -> None:
    objects = InMemoryObjects()
    params = {"records": RECORDS, "operations": [{"op": "limit", "count": 2}], "destination": "s3://out/t.jsonl"}
    result = run("transform_data", params, objects)
    lines = objects.objects["s3://out/t.jsonl"].decode().splitlines()
    assert [json.loads(line)["name"] for line in lines] == [" ada ", "alan"]
    assert result["destination"] == "s3://out/t.jsonl" and "records" not in result and len(result["preview"]) == 2


def test_transform_data_cast_failure_is_permanent_and_names_the_record() -> None:
    params = {"records": [{"age": "x"}], "operations": [{"op": "cast", "field": "age", "to": "int"}]}
    with pytest.raises(PermanentJobError) as caught:
        run("transform_data", params, InMemoryObjects())
    assert caught.value.code == "cast_failed" and "records[0]" in caught.value.message and "'x'" in caught.value.message


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"records": [{}], "operations": [{"op": "explode"}]}, "explode"),
        ({"records": [], "operations": [{"op": "limit", "count": 1}]}, "records"),
        ({"records": [{}], "operations": []}, "operations"),
        ({"records": [{}], "operations": [{"op": "cast", "field": "a", "to": "date"}]}, "operations.0.cast.to"),
        ({"records": [{}], "operations": [{"op": "limit", "count": -1}]}, "operations.0.limit.count"),
    ],
)
def test_transform_data_bad_params_name_the_field(params: dict[str, Any], fragment: str) -> None:
    assert fragment in field_errors("transform_data", params)
