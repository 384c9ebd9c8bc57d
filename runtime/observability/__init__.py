"""Logs, metrics, tracing and AWS request counting; `configure(settings)` once per process sets all up."""

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
