"""Metrics as CloudWatch Embedded Metric Format: one compact JSON line per emit on stdout.

CloudWatch Logs turns the lines into metrics; nothing calls PutMetricData.
"""

from __future__ import annotations

import json
import threading
import time
from typing import IO

from runtime.observability.logs import write_line
from runtime.observability.names import METRICS_NAMESPACE, SERVICE_DIMENSION, Metric

# The units CloudWatch accepts (anything else is rejected at ingestion, silently losing the metric).
UNITS = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
        "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
        "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
        "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
    }
)  # fmt: skip

_lock = threading.Lock()
_namespace = METRICS_NAMESPACE
_service = "job-tickets"
_stream: IO[str] | None = None  # None: sys.stdout at write time


def configure(namespace: str, service: str, *, stream: IO[str] | None = None) -> None:
    global _namespace, _service, _stream
    if not namespace:
        raise ValueError(f"bad metrics namespace: {namespace!r}")
    with _lock:
        _namespace, _service, _stream = namespace, service, stream


def emf_record(
    metrics: dict[Metric, tuple[float, str]],
    *,
    dimensions: dict[str, str] | None = None,
    timestamp_ms: int | None = None,
) -> dict[str, object]:
    """The EMF document for one emit; every metric shares the dimension set Service + `dimensions`."""
    if not metrics:
        raise ValueError("no metrics to emit")
    all_dimensions = {SERVICE_DIMENSION: _service, **(dimensions or {})}
    definitions = []
    for name, (_, unit) in metrics.items():
        if unit not in UNITS:
            raise ValueError(f"unknown cloudwatch unit for {name}: {unit!r}")
        definitions.append({"Name": name, "Unit": unit})
    record: dict[str, object] = {
        "_aws": {
            "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [
                {"Namespace": _namespace, "Dimensions": [list(all_dimensions)], "Metrics": definitions}
            ],
        },
        **all_dimensions,
    }
    for name, (value, _) in metrics.items():
        record[name] = float(value)
    return record


def emit(metrics: dict[Metric, tuple[float, str]], *, dimensions: dict[str, str] | None = None) -> None:
    """Writes one EMF line, e.g. emit({Metric.JOB_DURATION: (12.5, "Milliseconds")}, dimensions={"JobType": "x"})."""
    line = json.dumps(emf_record(metrics, dimensions=dimensions), separators=(",", ":"))
    write_line(line, _stream)
