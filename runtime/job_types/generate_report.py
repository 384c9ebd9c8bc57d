"""Job type `generate_report`: groups the rows given in params, aggregates one numeric metric per group
(count, sum, min, max, mean) and writes the report to S3 as JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runtime.job_types.registry import JobContext, job_type
from runtime.job_types.s3uri import S3Uri

MAX_ROWS = 5_000
MAX_FIELDS_PER_ROW = 50
# The share of the job's progress aggregating the rows stands for; rendering and writing the report are the rest.
BUILD_SHARE = 0.9
# The rendered report may be at most this many bytes (what one job may make a worker hold and write).
MAX_REPORT_BYTES = 2 * 1024 * 1024
# The widest a rendered number gets: a float that is not integral (digits, point, sign, exponent).
NUMBER_WIDTH = 24
REPORT_LIMIT_TEXT = (
    f"The report may be at most {MAX_REPORT_BYTES} bytes. At submit its size is estimated from the distinct groups "
    "(one entry each, with its name) and the widest number the metric's sums can reach; an estimate over the limit "
    "is refused with 422 naming `rows`."
)
Scalar = str | int | float | bool | None


class GenerateReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"description": REPORT_LIMIT_TEXT})

    title: str = Field(min_length=1, max_length=200)
    rows: list[dict[str, Scalar]] = Field(
        min_length=1,
        max_length=MAX_ROWS,
        description=f"1-{MAX_ROWS} rows of at most {MAX_FIELDS_PER_ROW} fields, each with `group_by` and a numeric "
        f"`metric`. {REPORT_LIMIT_TEXT}",
    )
    group_by: str = Field(min_length=1, max_length=100)
    metric: str = Field(min_length=1, max_length=100)
    format: Literal["json", "csv"] = "json"
    destination: S3Uri

    @model_validator(mode="after")
    def _rows_have_fields(self) -> GenerateReportParams:
        for index, row in enumerate(self.rows):
            if len(row) > MAX_FIELDS_PER_ROW:
                raise ValueError(f"rows[{index}] has {len(row)} fields, the limit is {MAX_FIELDS_PER_ROW}")
            if self.group_by not in row:
                raise ValueError(f"rows[{index}] has no group_by field {self.group_by!r}")
            value = row.get(self.metric)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"rows[{index}].{self.metric} must be a finite number, got {value!r}")
        groups, size = estimated_report_bytes(self)
        if size > MAX_REPORT_BYTES:
            raise ValueError(
                f"rows: {groups} groups would make a report of about {size} bytes, the limit is {MAX_REPORT_BYTES}"
            )
        return self


def _group_key(value: Scalar) -> str:
    # Groups are named by text so that the report sorts and renders the same way in JSON and CSV.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _aggregate(values: Iterable[float]) -> dict[str, Any]:
    items = list(values)
    total = math.fsum(items)
    return {
        "count": len(items),
        "sum": _number(total),
        "min": _number(min(items)),
        "max": _number(max(items)),
        "mean": _number(total / len(items)),
    }


def _number(value: float) -> int | float:
    # Integral values stay integers so that a report of counts reads naturally; others keep 6 decimals.
    return int(value) if float(value).is_integer() else round(value, 6)


def build_report(params: GenerateReportParams, before_row: Callable[[int], None] | None = None) -> dict[str, Any]:
    """`before_row(index)` runs before each row (the handler's cancel check and progress)."""
    groups: dict[str, list[float]] = {}
    for index, row in enumerate(params.rows):
        if before_row is not None:
            before_row(index)
        metric = row[params.metric]
        assert isinstance(metric, int | float)
        groups.setdefault(_group_key(row[params.group_by]), []).append(float(metric))
    return {
        "title": params.title,
        "group_by": params.group_by,
        "metric": params.metric,
        "groups": [{"group": key, **_aggregate(values)} for key, values in sorted(groups.items())],
        "total": _aggregate(value for values in groups.values() for value in values),
    }


def estimated_report_bytes(params: GenerateReportParams) -> tuple[int, int]:
    """(distinct groups, most bytes the report can take): the JSON rendering, which is larger than the CSV one."""
    names = {_group_key(row[params.group_by]) for row in params.rows}
    largest = max(abs(float(row[params.metric] or 0)) for row in params.rows) * len(params.rows)
    # A sum of integral values renders as an integer: as wide as its digits (1e300 has 301).
    width = max(NUMBER_WIDTH, len(str(int(largest))) + 2)
    empty = {"title": params.title, "group_by": params.group_by, "metric": params.metric, "groups": []}
    size = len(render({**empty, "total": _ZERO_AGGREGATE}, "json")[0]) + len(_ZERO_AGGREGATE) * width
    per_group = _GROUP_BYTES + len(_ZERO_AGGREGATE) * width
    size += sum(per_group + len(json.dumps(name, ensure_ascii=False).encode("utf-8")) for name in names)
    return len(names), size


def render(report: dict[str, Any], fmt: str) -> tuple[bytes, str]:
    if fmt == "json":
        return json.dumps(report, sort_keys=True, ensure_ascii=False, indent=2).encode("utf-8"), "application/json"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = ["count", "sum", "min", "max", "mean"]
    writer.writerow([report["group_by"], *columns])
    for group in report["groups"]:
        writer.writerow([group["group"], *(group[column] for column in columns)])
    writer.writerow(["TOTAL", *(report["total"][column] for column in columns)])
    return out.getvalue().encode("utf-8"), "text/csv"


_ZERO_AGGREGATE: dict[str, Any] = {"count": 0, "sum": 0, "min": 0, "max": 0, "mean": 0}


def _group_bytes() -> int:
    """What one group with an empty name adds to the JSON report, beside its numbers' own widths."""
    base: dict[str, Any] = {"title": "t", "group_by": "g", "metric": "m", "groups": [], "total": _ZERO_AGGREGATE}
    one = {**base, "groups": [{"group": "", **_ZERO_AGGREGATE}]}
    return len(render(one, "json")[0]) - len(render(base, "json")[0])


_GROUP_BYTES = _group_bytes()


@job_type("generate_report", params=GenerateReportParams)
def generate_report(params: GenerateReportParams, ctx: JobContext) -> dict[str, Any]:
    """Aggregates `metric` per `group_by` over `rows` and writes the report (JSON or CSV) to `destination`."""
    total = len(params.rows)

    def before_row(index: int) -> None:
        ctx.raise_if_cancelled()
        ctx.report_progress(BUILD_SHARE * index / total, f"{index} of {total} rows aggregated")

    report = build_report(params, before_row)
    ctx.report_progress(BUILD_SHARE, f"{total} of {total} rows aggregated")
    body, content_type = render(report, params.format)
    ctx.raise_if_cancelled()
    ctx.objects.put_bytes(params.destination, body, content_type=content_type)
    ctx.report_progress(1.0, "report written")
    # The result stays small (it is stored in the job record): the groups are in the report itself.
    return {
        "destination": params.destination,
        "format": params.format,
        "bytes": len(body),
        "rows": len(params.rows),
        "groups": len(report["groups"]),
        "total": report["total"],
    }
