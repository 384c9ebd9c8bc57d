"""Job type `transform_data`: applies a pipeline of operations (rename, select, drop, filter, uppercase,
lowercase, strip, cast, default, sort, dedupe, limit) to the records given in params."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runtime.job_types.registry import JobContext, PermanentJobError, job_type
from runtime.job_types.s3uri import S3Uri

MAX_RECORDS = 5_000
MAX_OPERATIONS = 50
# With a destination the records are in S3; the job record only keeps a preview (item size is billed).
PREVIEW_RECORDS = 5

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


class TransformDataParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_RECORDS)
    operations: list[Operation] = Field(min_length=1, max_length=MAX_OPERATIONS)
    destination: S3Uri | None = None  # written as JSON lines when given


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


@job_type("transform_data", params=TransformDataParams)
def transform_data(params: TransformDataParams, ctx: JobContext) -> dict[str, Any]:
    """Applies `operations` in order to `records`; returns the records (or writes them as JSON lines)."""
    records, steps = transform(params, ctx.raise_if_cancelled)
    result: dict[str, Any] = {"input_count": len(params.records), "output_count": len(records), "steps": steps}
    if params.destination is None:
        result["records"] = records
        return result
    ctx.raise_if_cancelled()
    body = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    ctx.objects.put_bytes(params.destination, body, content_type="application/x-ndjson")
    result.update(destination=params.destination, bytes=len(body), preview=records[:PREVIEW_RECORDS])
    return result
