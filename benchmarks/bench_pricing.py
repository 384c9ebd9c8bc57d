"""DynamoDB item sizes and request units, and dollars per million jobs from counted AWS requests.

Sizes follow the documented rules (DynamoDB developer guide, "Item sizes and formats"): an item's size is the
sum of its attribute names and values; strings and binaries by their UTF-8/byte length; numbers 1 byte per two
significant digits plus 1; booleans and nulls 1 byte; lists and maps 3 bytes plus 1 byte per element plus the
elements (map keys count as names). On-demand writes cost one unit per started 1 KB (updates: the larger of the
item before and after), reads one unit per started 4 KB strongly consistent or half that eventually consistent,
transactions twice that. A write also writes each GSI the item is (or was) projected into.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.domain.ports import QUEUE_BATCH_LIMIT

AttributeValue = Mapping[str, Any]  # the low-level DynamoDB JSON form: {"S": "x"}, {"N": "1"}, {"M": {...}}
Item = Mapping[str, AttributeValue]

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
SQS_CHUNK_BYTES = 65_536
GIB = 1024**3


# --- item size ---------------------------------------------------------------------------------------------------


def number_size(text: str) -> int:
    """1 byte per two significant digits (leading and trailing zeros trimmed) plus 1 byte."""
    mantissa = text.strip().lstrip("+-").lower().split("e")[0]
    # Leading and trailing zeros are not stored (1700000000000 is 17 x 10^11); zeros between digits are.
    digits = mantissa.replace(".", "").strip("0")
    return math.ceil(len(digits) / 2) + 1


def _binary_size(value: bytes | bytearray | str) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    return len(base64.b64decode(value))


def value_size(value: AttributeValue) -> int:
    if len(value) != 1:
        raise ValueError(f"attribute value must have exactly one type key, got {sorted(value)}")
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode("utf-8"))
    if kind == "N":
        return number_size(str(inner))
    if kind == "B":
        return _binary_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(element).encode("utf-8")) for element in inner)
    if kind == "NS":
        return sum(number_size(str(element)) for element in inner)
    if kind == "BS":
        return sum(_binary_size(element) for element in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in inner)
    if kind == "M":
        return 3 + sum(1 + len(name.encode("utf-8")) + value_size(element) for name, element in inner.items())
    raise ValueError(f"unknown attribute type {kind!r}")


def item_size(item: Item) -> int:
    """The billed size of an item: attribute names plus values."""
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(size_bytes: int) -> int:
    return max(1, math.ceil(size_bytes / WRITE_UNIT_BYTES))


def read_units(size_bytes: int, *, consistent: bool) -> float:
    units = max(1, math.ceil(size_bytes / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


# --- global secondary indexes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gsi:
    name: str
    key_attributes: tuple[str, ...]
    projection: str  # KEYS_ONLY | INCLUDE | ALL
    included: tuple[str, ...] = ()

    def entry(self, item: Item | None, table_keys: tuple[str, ...]) -> dict[str, AttributeValue] | None:
        """The index entry an item projects into, or None when the item lacks a key attribute (sparse index)."""
        if item is None or any(name not in item for name in self.key_attributes):
            return None
        if self.projection == "ALL":
            return dict(item)
        names = set(table_keys) | set(self.key_attributes)
        if self.projection == "INCLUDE":
            names |= set(self.included)
        return {name: item[name] for name in names if name in item}


def gsis_from_description(table: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[Gsi, ...]]:
    """Table keys and GSIs from a DescribeTable answer's "Table"."""
    table_keys = tuple(key["AttributeName"] for key in table["KeySchema"])
    indexes = []
    for index in table.get("GlobalSecondaryIndexes", []):
        projection = index.get("Projection", {})
        indexes.append(
            Gsi(
                name=index["IndexName"],
                key_attributes=tuple(key["AttributeName"] for key in index["KeySchema"]),
                projection=projection.get("ProjectionType", "ALL"),
                included=tuple(projection.get("NonKeyAttributes", [])),
            )
        )
    return table_keys, tuple(indexes)


@dataclass(frozen=True)
class WriteCost:
    table_units: int
    index_units: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.table_units + sum(self.index_units.values())


def write_cost(
    before: Item | None,
    after: Item | None,
    *,
    table_keys: tuple[str, ...],
    gsis: Iterable[Gsi],
    transactional: bool = False,
) -> WriteCost:
    """Units of one write that turns `before` into `after` (None = absent): the table by the larger of the two,
    and each GSI: a put when the item enters it, a delete when it leaves, an update when a projected attribute
    changes, a delete plus a put when an index key attribute changes."""
    sizes = [item_size(state) for state in (before, after) if state is not None]
    table_units = write_units(max(sizes) if sizes else 0)
    index_units: dict[str, int] = {}
    for gsi in gsis:
        old, new = gsi.entry(before, table_keys), gsi.entry(after, table_keys)
        units = 0
        if old is None and new is not None:
            units = write_units(item_size(new))
        elif old is not None and new is None:
            units = write_units(item_size(old))
        elif old is not None and new is not None and old != new:
            key_changed = any(old.get(name) != new.get(name) for name in gsi.key_attributes)
            if key_changed:
                units = write_units(item_size(old)) + write_units(item_size(new))
            else:
                units = write_units(max(item_size(old), item_size(new)))
        if units:
            index_units[gsi.name] = units
    factor = 2 if transactional else 1
    return WriteCost(table_units * factor, {name: units * factor for name, units in index_units.items()})


# --- prices -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceTable:
    """us-east-1 public list prices (no free tier). Check them against the AWS pricing pages before quoting."""

    as_of: str = "2025-06 (DynamoDB on-demand after the 2024-11-01 price cut)"
    region: str = "us-east-1"
    dynamodb_write_unit: float = 0.625 / 1e6  # on-demand, per write request unit
    dynamodb_read_unit: float = 0.125 / 1e6  # on-demand, per read request unit
    sqs_request: float = 0.40 / 1e6  # standard queue, per request per 64 KB chunk
    cloudwatch_request: float = 0.01 / 1000  # PutMetricData (and other metric API calls), per request
    logs_ingestion_gib: float = 0.50  # CloudWatch Logs standard ingestion, per GB (2^30 bytes)
    s3_get: float = 0.0004 / 1000  # S3 Standard GET, per request (the job's own work, shown apart)
    s3_put: float = 0.005 / 1000  # S3 Standard PUT/COPY/POST/LIST, per request

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("DynamoDB on-demand write request unit", f"${self.dynamodb_write_unit * 1e6:.3f} per million"),
            ("DynamoDB on-demand read request unit", f"${self.dynamodb_read_unit * 1e6:.3f} per million"),
            ("SQS standard request (per 64 KB chunk)", f"${self.sqs_request * 1e6:.2f} per million"),
            ("CloudWatch PutMetricData / metric API request", f"${self.cloudwatch_request * 1000:.2f} per 1,000"),
            ("CloudWatch Logs ingestion (standard)", f"${self.logs_ingestion_gib:.2f} per GB"),
            ("S3 Standard GET (job work, shown apart)", f"${self.s3_get * 1000:.4f} per 1,000"),
            ("S3 Standard PUT (job work, shown apart)", f"${self.s3_put * 1000:.3f} per 1,000"),
        ]


# --- dollars per job ----------------------------------------------------------------------------------------------

DYNAMODB_CONTROL_PLANE = frozenset({"DescribeTable", "ListTables", "DescribeTimeToLive", "UpdateTimeToLive"})
S3_GET_CLASS = frozenset({"GetObject", "HeadObject", "HeadBucket"})


@dataclass(frozen=True)
class JobItemStates:
    """One job's item as the submit wrote it, as a claim leaves it (a long job's, claimed past the lazy-claim
    threshold), and at the end (all low-level JSON)."""

    pending: Item
    processing: Item
    final: Item


@dataclass(frozen=True)
class CostLine:
    service: str
    what: str
    quantity_per_job: float  # units, requests or bytes per job
    unit: str
    dollars_per_million_jobs: float
    system: bool = True  # False for the job handler's own work (S3 of process_document)


def _sqs_chunks(payload_bytes: int) -> int:
    return max(1, math.ceil(payload_bytes / SQS_CHUNK_BYTES))


def price_per_job(
    calls_per_job: Mapping[str, Mapping[str, float]],
    *,
    states: JobItemStates,
    table_keys: tuple[str, ...],
    gsis: tuple[Gsi, ...],
    log_bytes_per_job: float,
    prices: PriceTable,
    sqs_payload_bytes: int = 256,
) -> list[CostLine]:
    """Cost lines per job from counts keyed {category: {"service.Operation": calls per job}}.

    What each DynamoDB write costs depends on which write it is: a submit PutItem is the PENDING item entering
    the table and its GSIs; a worker's UpdateItems per job are one completion and, for the jobs claimed (long ones
    past the lazy-claim threshold, redeliveries), a claim: up to one per job a quick job's unclaimed completion
    (PENDING -> final, leaving pending-by-age), the rest a claim (PENDING -> PROCESSING) plus a completion
    (PROCESSING -> final) in place of it; background UpdateItems are lease extensions or republish marks (same
    item, same size); DLQ UpdateItems a final failure.
    What a read costs depends on what it reads: the worker's BatchGetItem (the lazy claim's read after a receive)
    reads each job of a submit's message once, the PENDING item, consistently (1 RRU per started 4 KB of each item,
    not per request): one item per job, or fewer when there were fewer than one request per QUEUE_BATCH_LIMIT
    jobs; other reads one final item per request.
    """
    put = write_cost(None, states.pending, table_keys=table_keys, gsis=gsis).total
    claim = write_cost(states.pending, states.processing, table_keys=table_keys, gsis=gsis).total
    complete = write_cost(states.processing, states.final, table_keys=table_keys, gsis=gsis).total
    unclaimed = write_cost(states.pending, states.final, table_keys=table_keys, gsis=gsis).total
    same_processing = write_cost(states.processing, states.processing, table_keys=table_keys, gsis=gsis).total
    final_read = read_units(item_size(states.final), consistent=True)
    pending_read = read_units(item_size(states.pending), consistent=True)

    lines: list[CostLine] = []
    for category in sorted(calls_per_job):
        for key, count in sorted(calls_per_job[category].items()):
            if count <= 0:
                continue
            service, _, operation = key.partition(".")
            service = service.lower()
            if service == "dynamodb":
                lines.extend(
                    _dynamodb_lines(
                        category,
                        operation,
                        count,
                        _Writes(put, claim, complete, unclaimed, same_processing),
                        final_read,
                        pending_read,
                        prices,
                    )
                )
            elif service == "sqs":
                requests = count * _sqs_chunks(sqs_payload_bytes)
                lines.append(
                    CostLine(
                        "sqs", f"{category} {operation}", requests, "requests", requests * prices.sqs_request * 1e6
                    )
                )
            elif service in ("cloudwatch", "monitoring"):
                lines.append(
                    CostLine(
                        "cloudwatch",
                        f"{category} {operation}",
                        count,
                        "requests",
                        count * prices.cloudwatch_request * 1e6,
                    )
                )
            elif service == "s3":
                price = prices.s3_get if operation in S3_GET_CLASS else prices.s3_put
                lines.append(
                    CostLine("s3", f"{category} {operation}", count, "requests", count * price * 1e6, system=False)
                )
            else:
                # Other services (ssm at start-up, sts) are not per-job request charges in this design.
                lines.append(CostLine(service, f"{category} {operation}", count, "requests (not priced)", 0.0))
    lines.append(
        CostLine(
            "logs",
            "stdout JSON + EMF lines ingested",
            log_bytes_per_job,
            "bytes",
            log_bytes_per_job / GIB * prices.logs_ingestion_gib * 1e6,
        )
    )
    return lines


@dataclass(frozen=True)
class _Writes:
    """WRU of each kind of job write."""

    put: int
    claim: int
    complete: int  # from PROCESSING
    unclaimed: int  # a quick job's only worker write: from PENDING to its outcome
    same_processing: int


def _dynamodb_lines(
    category: str,
    operation: str,
    count: float,
    writes: _Writes,
    final_read: float,
    pending_read: float,
    prices: PriceTable,
) -> list[CostLine]:
    put, claim, complete, same_processing = writes.put, writes.claim, writes.complete, writes.same_processing
    what = f"{category} {operation}"
    if operation in DYNAMODB_CONTROL_PLANE:
        return [CostLine("dynamodb", what, count, "requests (control plane, free)", 0.0)]
    if operation == "BatchGetItem" and category == "worker":
        # Billed per item read: up to QUEUE_BATCH_LIMIT jobs per request (one receive's), each job read once.
        units = min(1.0, count * QUEUE_BATCH_LIMIT) * pending_read
        return [CostLine("dynamodb", what, units, "RRU", units * prices.dynamodb_read_unit * 1e6)]
    if operation in ("GetItem", "BatchGetItem"):
        units = count * final_read
        return [CostLine("dynamodb", what, units, "RRU", units * prices.dynamodb_read_unit * 1e6)]
    if operation in ("Query", "Scan"):
        # A GSI query is eventually consistent: half a unit per started 4 KB; the sweeps return little or nothing.
        units = count * 0.5
        return [CostLine("dynamodb", what, units, "RRU", units * prices.dynamodb_read_unit * 1e6)]
    if operation == "TransactGetItems":
        units = count * final_read * 2
        return [CostLine("dynamodb", what, units, "RRU", units * prices.dynamodb_read_unit * 1e6)]
    if operation in ("PutItem", "BatchWriteItem"):
        units = count * put
    elif operation == "TransactWriteItems":
        units = count * put * 2
    elif operation == "UpdateItem" and category == "worker":
        # One completion per job; each update beyond it a claim, which makes that job's completion one from
        # PROCESSING instead of the unclaimed one from PENDING; more than two per job are further completions.
        claimed = min(max(count - 1.0, 0.0), 1.0)
        units = (
            min(count, 1.0) * writes.unclaimed
            + claimed * (claim + complete - writes.unclaimed)
            + max(count - 2.0, 0.0) * complete
        )
    elif operation == "UpdateItem" and category == "background":
        units = count * same_processing
    elif operation in ("UpdateItem", "DeleteItem"):
        units = count * complete
    else:
        units = count * complete
    return [CostLine("dynamodb", what, units, "WRU", units * prices.dynamodb_write_unit * 1e6)]
