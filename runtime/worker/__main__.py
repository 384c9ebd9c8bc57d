"""`python -m runtime.worker`: the composition root (settings -> boto3 clients -> adapters -> worker) with
graceful SIGTERM/SIGINT handling: stop receiving, finish or release in-flight jobs, exit 0."""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from runtime import aws_clients, entrypoint
from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.adapters.priority_queue import sqs_priority_queue
from runtime.adapters.s3_objects import S3ObjectStore
from runtime.adapters.sqs_callback_queue import SqsCallbackQueue
from runtime.adapters.sqs_depth import SqsQueueDepths
from runtime.observability import logs, tracing
from runtime.observability.names import LogEvent
from runtime.worker.liveness import Liveness, liveness_file
from runtime.worker.runner import Worker


def load_plugins(names: Sequence[str]) -> list[str]:
    """Imports the settings' worker_plugins, each registering job types with @job_type."""
    for name in names:
        importlib.import_module(name)
    return list(names)


def _liveness_failed(exc: OSError) -> None:
    logs.log_event(LogEvent.WORKER_LIVENESS_FAILED, level="warning", error=f"{type(exc).__name__}: {exc}")


def main() -> int:
    settings = entrypoint.configured_settings()
    if settings is None:
        return entrypoint.BAD_SETTINGS_EXIT
    plugins = load_plugins(settings.worker_plugins)

    clients = aws_clients.clients(settings)
    worker = Worker(
        store=DynamoDbJobStore(clients.dynamodb, settings.table_name),
        queue=sqs_priority_queue(clients.sqs, settings.priority_queue_urls, trace_header=tracing.current_trace_header),
        objects=S3ObjectStore(clients.s3),
        settings=settings,
        liveness=Liveness(liveness_file(), on_error=_liveness_failed),
        callback_queue=SqsCallbackQueue(clients.sqs, settings.callback_queue_url)
        if settings.callback_queue_url
        else None,
        queue_depths=SqsQueueDepths(clients.sqs, settings.priority_queue_urls),
    )

    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logs.log_event(LogEvent.WORKER_SIGNAL, signal=signal.Signals(signum).name)
        stop_requested.set()

    entrypoint.on_stop_signals(on_signal)
    logs.log_event(LogEvent.WORKER_STARTING, environment=settings.environment, plugins=plugins or None)
    worker.start()
    # Event.wait() in the main thread stays interruptible by signals when given a timeout.
    while not stop_requested.wait(1.0):
        pass
    worker.stop(settings.shutdown_deadline_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
