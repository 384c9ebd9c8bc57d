"""`python -m runtime.local.callback_poller`: the callback Lambda's event source mapping on the emulator.

A few pollers side by side (the Lambda's reserved concurrency, in small) long-poll the callback queue and call
`runtime.callback_handler.handler` as Lambda would (runtime/local/dlq_poller.py does the mapping's work), so one
endpoint that hangs holds one poller for at most the callback timeout while the others go on.
"""

from __future__ import annotations

import sys
import threading
from types import FrameType

from runtime.local.dlq_poller import ERROR_PAUSE_S, DeadLetterPoller
from runtime.observability import logs
from runtime.observability.names import LogEvent

POLLERS = 4


def main() -> int:
    from runtime import aws_clients, callback_handler, entrypoint

    settings = entrypoint.configured_settings()
    if settings is None:
        return entrypoint.BAD_SETTINGS_EXIT
    if not settings.callback_queue_url:
        print("the callback poller needs JOBS_CALLBACK_QUEUE_URL (or <ssm path>/callback-queue-url)", file=sys.stderr)
        return entrypoint.BAD_SETTINGS_EXIT
    sqs = aws_clients.client("sqs", settings)
    pollers = [
        DeadLetterPoller(sqs, settings.callback_queue_url, callback_handler.handler, region=settings.region)
        for _ in range(POLLERS)
    ]
    stopping = threading.Event()

    def run(poller: DeadLetterPoller) -> None:
        while not stopping.is_set():
            try:
                poller.poll_once()
            except Exception as exc:  # noqa: BLE001 - the emulator may be briefly away; keep polling
                logs.log_event(LogEvent.DLQ_POLL_FAILED, level="warning", error=f"{type(exc).__name__}: {exc}")
                stopping.wait(ERROR_PAUSE_S)

    threads = [
        threading.Thread(target=run, args=(poller,), name=f"callbacks-{i}", daemon=True)
        for i, poller in enumerate(pollers)
    ]

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    entrypoint.on_stop_signals(on_signal)
    logs.log_event(LogEvent.CALLBACK_POLLER_STARTING, queueUrl=settings.callback_queue_url, pollers=POLLERS)
    for thread in threads:
        thread.start()
    while not stopping.wait(1.0):
        pass
    # A delivery under way ends within the callback timeout; idle long polls are left (daemon threads).
    for poller, thread in zip(pollers, threads, strict=True):
        if poller.busy.is_set():
            thread.join(settings.callback_timeout_s + 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
