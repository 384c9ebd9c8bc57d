"""Logs, metrics, tracing and AWS request counting; `configure(settings)` once per process sets all up.

Why the JSON logger (logs.py) and the EMF writer (metrics.py) are ours and not Powertools' Logger and Metrics
(aws-lambda-powertools is pinned and used elsewhere, e.g. the DLQ handler's SQS record classes), measured with
`python -m tools.bench_observability` (one process, interleaved rounds, the worker's per-job line and emit):
- Cost: Powertools' Logger takes about 3x our time per line (102 vs 33 us) and EphemeralMetrics about 5.5x
  per emit (154 vs 28 us) on this 2-core machine; its log line is 10% bigger (378 vs 344 B), billed as
  CloudWatch Logs ingestion on every job.
- Contract: its EMF names the service dimension `service`, not `Service`, and writes values as lists; the
  dashboards search `Service=` (names.SERVICE_DIMENSION), so switching would blank them. Its log line has
  `message`, `location` and upper-case levels instead of our `event`, `ts` and `level`.
- Threads: `Metrics` keeps one metric set per process (the worker's job threads would mix their JobType
  dimensions), and every flush is a bare print(): the line and its newline are two unlocked writes, which
  concurrent threads can interleave. Our lines are written whole under one lock shared by logs and metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.observability import aws_calls, logs, metrics, tracing
from runtime.observability.logs import bind, log_event
from runtime.observability.metrics import emit

if TYPE_CHECKING:
    from runtime.settings import Settings

__all__ = ["aws_calls", "bind", "configure", "emit", "log_event", "logs", "metrics", "tracing"]


def configure(settings: Settings) -> None:
    logs.configure(settings)
    metrics.configure(settings.metrics_namespace, settings.service_name)
    tracing.configure(settings)
    if settings.aws_calls_file:
        aws_calls.start_file_dump(settings.aws_calls_file)
