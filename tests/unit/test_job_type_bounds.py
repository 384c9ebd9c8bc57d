"""Issue 11, defect 3: job types bound what their params can make them produce, refusing at submit what would pass
the bound (naming the operation or field), and checking the real output again."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from runtime.job_types.generate_report import (
    MAX_REPORT_BYTES,
    GenerateReportParams,
    build_report,
    estimated_report_bytes,
    render,
)
from runtime.job_types.registry import PermanentJobError
from runtime.job_types.transform_data import (
    MAX_OUTPUT_BYTES,
    MAX_OUTPUT_VALUES,
    TransformDataParams,
    bounded_lines,
    estimated_output,
    transform,
)


def _refusal(model: Any, params: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(params)
    error = caught.value.errors()[0]
    return error["loc"], error["msg"]


def test_the_reported_request_is_refused_naming_the_operation() -> None:
    # The request of the issue: 5,000 records and a 40 kB default value (about 200 MB of output).
    params = {
        "records": [{"i": index} for index in range(5_000)],
        "operations": [{"op": "select", "fields": ["i"]}, {"op": "default", "field": "pad", "value": "x" * 40_000}],
    }
    location, message = _refusal(TransformDataParams, params)
    assert location == ("operations",)
    assert message.startswith("Value error, operations[1] (default) would make the records about 2001")
    assert f"the limit is {MAX_OUTPUT_BYTES}" in message


def test_the_same_default_on_few_records_is_accepted() -> None:
    params = TransformDataParams.model_validate(
        {"records": [{"i": 1}, {"i": 2}], "operations": [{"op": "default", "field": "pad", "value": "x" * 40_000}]}
    )
    records, _ = transform(params)
    assert len("".join(bounded_lines(records)).encode()) <= MAX_OUTPUT_BYTES


def test_a_limit_before_the_growth_counts_only_the_records_left() -> None:
    records = [{"i": index} for index in range(5_000)]
    grow = {"op": "default", "field": "pad", "value": "x" * 1_000}
    TransformDataParams.model_validate({"records": records, "operations": [{"op": "limit", "count": 100}, grow]})
    location, _ = _refusal(TransformDataParams, {"records": records, "operations": [grow]})
    assert location == ("operations",)


def test_many_small_values_count_too() -> None:
    # 5,000 records given ten small fields each: little JSON, but 50,000 dict entries in the worker.
    params = {
        "records": [{} for _ in range(5_000)],
        "operations": [{"op": "default", "field": f"f{index}", "value": index} for index in range(10)],
    }
    location, message = _refusal(TransformDataParams, params)
    assert location == ("operations",)
    assert message.endswith(
        f"operations[5] (default) would make the records hold about 30000 values, the limit is {MAX_OUTPUT_VALUES}"
    )


def test_renames_to_longer_names_count() -> None:
    records = [{"a": 1, "b": 2} for _ in range(3_000)]
    long_names = {"a": "a" * 100, "b": "b" * 100}
    location, message = _refusal(
        TransformDataParams, {"records": records, "operations": [{"op": "rename", "fields": long_names}]}
    )
    assert location == ("operations",) and "operations[0] (rename)" in message


def test_the_estimate_is_never_below_the_real_output_for_the_counted_operations() -> None:
    params = TransformDataParams.model_validate(
        {
            "records": [{"id": index, "name": f"n{index}", "score": index * 1.5} for index in range(500)],
            "operations": [
                {"op": "rename", "fields": {"name": "full_name"}},
                {"op": "default", "field": "team", "value": {"name": "core", "tags": ["a", "b"]}},
                {"op": "cast", "field": "id", "to": "str"},
                {"op": "sort", "by": ["score"], "descending": True},
            ],
        }
    )
    records, _ = transform(params)
    real = len("".join(bounded_lines(records)).encode())
    size, values = list(estimated_output(params.records, params.operations))[-1]
    assert real <= size and values >= sum(len(record) for record in records)


def test_growth_the_estimate_does_not_count_is_stopped_on_the_real_records() -> None:
    # "ΐ" (2 bytes) uppercases to three characters (6 bytes): not counted at submit, caught on the real output.
    text = "ΐ" * 100
    records = [{"t": text} for _ in range(1_000)]
    params = TransformDataParams.model_validate(
        {"records": records, "operations": [{"op": "uppercase", "fields": ["t"]}]}
    )
    out, _ = transform(params)
    with pytest.raises(PermanentJobError) as caught:
        bounded_lines(out)
    assert caught.value.code == "output_too_large"


def _report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"title": "t" * 200, "rows": rows, "group_by": "g", "metric": "v", "destination": "s3://docs/k.json"}


def test_a_report_of_many_wide_groups_is_refused_naming_rows() -> None:
    location, message = _refusal(GenerateReportParams, _report([{"g": index, "v": 1e300} for index in range(5_000)]))
    assert location == ()
    assert message.startswith("Value error, rows: 5000 groups would make a report of about")
    assert f"the limit is {MAX_REPORT_BYTES}" in message


@pytest.mark.parametrize(
    "rows",
    [
        [{"g": index, "v": index * 1.37} for index in range(5_000)],
        [{"g": index % 7, "v": -2.5e15} for index in range(5_000)],
        [{"g": f"group {index}", "v": 1e20} for index in range(3_000)],
    ],
    ids=["distinct", "few", "large sums"],
)
def test_the_report_estimate_is_never_below_the_real_report(rows: list[dict[str, Any]]) -> None:
    params = GenerateReportParams.model_validate(_report(rows))
    report = build_report(params)
    _, estimate = estimated_report_bytes(params)
    for fmt in ("json", "csv"):
        assert len(render(report, fmt)[0]) <= estimate


def test_the_limits_are_in_the_params_schemas() -> None:
    transform_schema = json.dumps(TransformDataParams.model_json_schema())
    report_schema = json.dumps(GenerateReportParams.model_json_schema())
    assert f"at most {MAX_OUTPUT_BYTES} bytes" in transform_schema and "5000" in transform_schema
    assert f"at most {MAX_REPORT_BYTES} bytes" in report_schema
