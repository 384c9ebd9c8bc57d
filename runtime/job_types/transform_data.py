"""Job type `transform_data`: applies a pipeline of operations (rename, select, drop, filter, uppercase,
lowercase, strip, cast, default, sort, dedupe, limit) to the records given in params."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from runtime.job_types.registry import JobContext, PermanentJobError, job_type
from runtime.job_types.s3uri import S3Uri

MAX_RECORDS = 5_000
MAX_OPERATIONS = 50
# The transformed records may be at most this many bytes of JSON (one line per record, as written to a
# destination): what one job may make a worker hold. Checked at submit with an estimate of the growth each
# operation can cause (OUTPUT_LIMIT_TEXT), and again on the real records before they are returned or written.
MAX_OUTPUT_BYTES = 512 * 1024
# ... and hold at most this many values (records x their fields): in memory a value costs far more than its JSON
# text (a dict entry, and each operation copies the records), so many small values weigh as much as a few big ones.
MAX_OUTPUT_VALUES = 25_000
OUTPUT_TOO_LARGE_CODE = "output_too_large"
# With a destination the records are in S3; the job record only keeps a preview (item size is billed).
PREVIEW_RECORDS = 5
OUTPUT_LIMIT_TEXT = (
    f"The transformed records may be at most {MAX_OUTPUT_BYTES} bytes of JSON and {MAX_OUTPUT_VALUES} values "
    "(records x fields). At submit both are estimated from the records as given plus, for every record still there "
    "(after any `limit`), what each operation can add: `default` a field and its value, `rename` the longer names, "
    "`cast` to str the quotes; an estimate over a limit is refused with 422 naming the operation. Growth the "
    "estimate does not count (e.g. `uppercase` of some non-ASCII letters) is checked on the real records: past the "
    f"limit the job fails with `{OUTPUT_TOO_LARGE_CODE}`."
)

FieldName = Annotated[str, Field(min_length=1, max_length=100)]
FieldList = Annotated[list[FieldName], Field(min_length=1, max_length=100)]


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rename(_Op):
    op: Literal["rename"]
    fields: dict[FieldName, FieldName] = Field(min_length=1, max_length=100)


class Select(_Op):
    op: Literal["select"]
    fields: FieldList


class Drop(_Op):
    op: Literal["drop"]
    fields: FieldList


class Filter(_Op):
    op: Literal["filter"]
    field: FieldName
    cmp: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists", "missing"] = "eq"
    value: Any = None


class ChangeCase(_Op):
    op: Literal["uppercase", "lowercase", "strip"]
    fields: FieldList


class Cast(_Op):
    op: Literal["cast"]
    field: FieldName
    to: Literal["int", "float", "str", "bool"]


class Default(_Op):
    op: Literal["default"]
    field: FieldName
    value: Any


class Sort(_Op):
    op: Literal["sort"]
    by: FieldList
    descending: bool = False


class Dedupe(_Op):
    op: Literal["dedupe"]
    fields: FieldList | None = None  # None: whole records


class Limit(_Op):
    op: Literal["limit"]
    count: int = Field(ge=0, le=MAX_RECORDS)


Operation = Annotated[
    Rename | Select | Drop | Filter | ChangeCase | Cast | Default | Sort | Dedupe | Limit, Field(discriminator="op")
]


def _json_bytes(value: Any) -> int:
    """Bytes of `value` as a JSON line holds it (the format of `bounded_lines`)."""
    return len(json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8"))


def growth_per_record(operation: _Op) -> int:
    """The most bytes of JSON `operation` can add to one record (0 for those that only keep, drop or reorder)."""
    if isinstance(operation, Default):
        return _json_bytes(operation.field) + _json_bytes(operation.value) + 4  # ", " and ": "
    if isinstance(operation, Rename):
        return sum(max(0, _json_bytes(new) - _json_bytes(old)) for old, new in operation.fields.items())
    if isinstance(operation, Cast) and operation.to == "str":
        return 2  # a number or literal becomes a string: its quotes
    return 0


def estimated_output(records: list[dict[str, Any]], operations: list[Operation]) -> Iterator[tuple[int, int]]:
    """After each operation, the estimated (bytes of JSON, values) of the records (see OUTPUT_LIMIT_TEXT)."""
    size = sum(_json_bytes(record) + 1 for record in records)
    values = sum(len(record) for record in records)
    count = len(records)
    for operation in operations:
        if isinstance(operation, Limit):
            count = min(count, operation.count)
        size += count * growth_per_record(operation)
        values += count if isinstance(operation, Default) else 0
        yield size, values


class TransformDataParams(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"description": OUTPUT_LIMIT_TEXT})

    records: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_RECORDS, description=f"1-{MAX_RECORDS} JSON objects."
    )
    operations: list[Operation] = Field(
        min_length=1,
        max_length=MAX_OPERATIONS,
        description=f"1-{MAX_OPERATIONS} operations, applied in order. Their output is bounded: {OUTPUT_LIMIT_TEXT}",
    )
    destination: S3Uri | None = Field(
        default=None, description="Where to write the records as JSON lines; without it they are in the result."
    )

    @field_validator("operations")
    @classmethod
    def _bounded_output(cls, operations: list[Operation], info: ValidationInfo) -> list[Operation]:
        records = info.data.get("records")
        if records is None:  # refused already
            return operations
        for step, (size, values) in enumerate(estimated_output(records, operations)):
            where = f"operations[{step}] ({operations[step].op}) would make the records"
            if size > MAX_OUTPUT_BYTES:
                raise ValueError(f"{where} about {size} bytes of json, the limit is {MAX_OUTPUT_BYTES}")
            if values > MAX_OUTPUT_VALUES:
                raise ValueError(f"{where} hold about {values} values, the limit is {MAX_OUTPUT_VALUES}")
        return operations


Record = dict[str, Any]


def _compare(cmp: str, actual: Any, expected: Any) -> bool:
    if cmp == "eq":
        return bool(actual == expected)
    if cmp == "ne":
        return bool(actual != expected)
    if cmp == "in":
        return isinstance(expected, list) and actual in expected
    if cmp == "contains":
        return isinstance(actual, str | list) and isinstance(expected, str | int | float) and expected in actual
    # Ordering comparisons only between numbers or between strings; anything else simply does not match.
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (actual, expected))
    strings = isinstance(actual, str) and isinstance(expected, str)
    if not (numbers or strings):
        return False
    if cmp == "gt":
        return bool(actual > expected)
    if cmp == "gte":
        return bool(actual >= expected)
    if cmp == "lt":
        return bool(actual < expected)
    return bool(actual <= expected)


def _cast(value: Any, to: str, where: str) -> Any:
    try:
        if value is None:
            return None
        if to == "str":
            return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if to == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in {"true", "yes", "1", "false", "no", "0"}:
                return value.strip().lower() in {"true", "yes", "1"}
            if isinstance(value, int | float):
                return value != 0
            raise ValueError
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        if to == "int":
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            return int(number)
        return float(value)
    except (ValueError, OverflowError):
        raise PermanentJobError("cast_failed", f"{where}: cannot cast {value!r} to {to}") from None


_CHANGE_CASE: dict[str, Callable[[str], str]] = {
    "uppercase": lambda text: text.upper(),
    "lowercase": lambda text: text.lower(),
    "strip": lambda text: text.strip(),
}


def _sort_key(value: Any) -> tuple[int, Any]:
    # Missing/None first, then numbers, then strings, then anything else by its JSON text: a total order.
    if value is None:
        return (0, 0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value, sort_keys=True))


def apply(operation: _Op, records: list[Record], step: int) -> list[Record]:
    if isinstance(operation, Rename):
        return [{operation.fields.get(k, k): v for k, v in r.items()} for r in records]
    if isinstance(operation, Select):
        return [{k: r[k] for k in operation.fields if k in r} for r in records]
    if isinstance(operation, Drop):
        dropped = set(operation.fields)
        return [{k: v for k, v in r.items() if k not in dropped} for r in records]
    if isinstance(operation, Filter):
        if operation.cmp == "exists":
            return [r for r in records if operation.field in r]
        if operation.cmp == "missing":
            return [r for r in records if operation.field not in r]
        return [
            r for r in records if operation.field in r and _compare(operation.cmp, r[operation.field], operation.value)
        ]
    if isinstance(operation, ChangeCase):
        change = _CHANGE_CASE[operation.op]
        names = set(operation.fields)
        return [{k: change(v) if k in names and isinstance(v, str) else v for k, v in r.items()} for r in records]
    if isinstance(operation, Cast):
        return [
            {**r, operation.field: _cast(r[operation.field], operation.to, f"operations[{step}] records[{i}]")}
            if operation.field in r
            else r
            for i, r in enumerate(records)
        ]
    if isinstance(operation, Default):
        return [r if r.get(operation.field) is not None else {**r, operation.field: operation.value} for r in records]
    if isinstance(operation, Sort):
        return sorted(
            records, key=lambda r: [_sort_key(r.get(name)) for name in operation.by], reverse=operation.descending
        )
    if isinstance(operation, Dedupe):
        seen: set[str] = set()
        kept = []
        for r in records:
            identity = r if operation.fields is None else {k: r.get(k) for k in operation.fields}
            marker = json.dumps(identity, sort_keys=True, default=str)
            if marker not in seen:
                seen.add(marker)
                kept.append(r)
        return kept
    if isinstance(operation, Limit):
        return records[: operation.count]
    raise AssertionError(f"unhandled operation {operation!r}")


def transform(
    params: TransformDataParams, between_steps: Callable[[], None] | None = None
) -> tuple[list[Record], list[dict[str, Any]]]:
    """The transformed records and, per step, how many records went in and came out. `between_steps` runs
    before each operation (the handler's cancel check)."""
    records = [dict(r) for r in params.records]
    steps = []
    for step, operation in enumerate(params.operations):
        if between_steps is not None:
            between_steps()
        before = len(records)
        records = apply(operation, records, step)
        steps.append({"op": operation.op, "in": before, "out": len(records)})
    return records, steps


def bounded_lines(records: list[Record], *, keep: bool = True) -> list[str]:
    """The records as JSON lines (only measured unless `keep`); PermanentJobError once they pass MAX_OUTPUT_BYTES
    (before the rest is encoded)."""
    lines: list[str] = []
    size = 0
    for record in records:
        line = json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"
        size += len(line.encode("utf-8"))
        if size > MAX_OUTPUT_BYTES:
            message = f"the transformed records are over {MAX_OUTPUT_BYTES} bytes of json"
            raise PermanentJobError(OUTPUT_TOO_LARGE_CODE, message)
        if keep:
            lines.append(line)
    return lines


@job_type("transform_data", params=TransformDataParams)
def transform_data(params: TransformDataParams, ctx: JobContext) -> dict[str, Any]:
    """Applies `operations` in order to `records`; returns the records (or writes them as JSON lines)."""
    records, steps = transform(params, ctx.raise_if_cancelled)
    result: dict[str, Any] = {"input_count": len(params.records), "output_count": len(records), "steps": steps}
    lines = bounded_lines(records, keep=params.destination is not None)
    if params.destination is None:
        result["records"] = records
        return result
    ctx.raise_if_cancelled()
    body = "".join(lines).encode("utf-8")
    ctx.objects.put_bytes(params.destination, body, content_type="application/x-ndjson")
    result.update(destination=params.destination, bytes=len(body), preview=records[:PREVIEW_RECORDS])
    return result
