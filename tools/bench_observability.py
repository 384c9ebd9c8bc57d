"""`python -m tools.bench_observability`: runtime/observability's hand-written JSON logs and EMF lines against
Powertools' Logger and Metrics, side by side in one process, on what the worker writes per job (one
`job_message` line with the trace and job bound, one EMF line of three metrics with a JobType dimension).

Prints time per call (median of interleaved rounds), the bytes each writes per call, and the ratios. Both
sides write into the same in-memory sink, so the figures are the libraries' own work, not the terminal's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.observability import logs, metrics
from runtime.observability.names import JOB_TYPE_DIMENSION, METRICS_NAMESPACE, LogEvent, Metric

REAL_STDOUT = sys.stdout  # powertools_emf redirects sys.stdout into the sink
SERVICE = "job-tickets"  # the hand-written logger's default, so that both lines carry the same name
TRACE_ID = "1-67a0f1c2-0123456789abcdef01234567"
JOB_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
JOB_FIELDS: dict[str, Any] = {
    "outcome": "succeeded",
    "action": "delete",
    "status": "SUCCEEDED",
    "jobType": "process_document",
    "attempt": 1,
    "receiveCount": 1,
    "handlerMs": 12.3,
    "queueLagMs": 45.6,
}


class Sink(io.StringIO):
    """Counts what is written and keeps nothing (or, with echo, shows it on the real stdout)."""

    def __init__(self, *, echo: bool = False) -> None:
        self.chars = 0
        self.lines = 0
        self.echo = echo

    def write(self, text: str) -> int:
        self.chars += len(text)
        self.lines += text.count("\n")
        if self.echo:
            REAL_STDOUT.write(text)
        return len(text)


@dataclass
class Case:
    name: str
    run: Callable[[], None]
    sink: Sink


def hand_written_log(sink: Sink) -> Callable[[], None]:
    logs.configure(stream=sink)

    def run() -> None:
        with logs.bind(trace_id=TRACE_ID, job_id=JOB_ID):  # as the worker binds each job
            logs.log_event(LogEvent.JOB_MESSAGE, **JOB_FIELDS)

    return run


def powertools_log(sink: Sink) -> Callable[[], None]:
    from aws_lambda_powertools import Logger

    logger = Logger(service=SERVICE, stream=sink, utc=True, use_rfc3339=True)

    def run() -> None:
        # Its thread-safe per-job keys; append_keys would be shared by every job thread.
        logger.thread_safe_append_keys(traceId=TRACE_ID, jobId=JOB_ID)
        logger.info(LogEvent.JOB_MESSAGE.value, extra=JOB_FIELDS)
        logger.thread_safe_clear_keys()

    return run


EMF_VALUES: dict[Metric, tuple[float, str]] = {
    Metric.JOBS_SUCCEEDED: (1.0, "Count"),
    Metric.QUEUE_LAG: (45.6, "Milliseconds"),
    Metric.JOB_DURATION: (12.3, "Milliseconds"),
}


def hand_written_emf(sink: Sink) -> Callable[[], None]:
    metrics.configure(METRICS_NAMESPACE, SERVICE, stream=sink)

    def run() -> None:
        metrics.emit(EMF_VALUES, dimensions={JOB_TYPE_DIMENSION: "process_document"})

    return run


def powertools_emf(sink: Sink) -> Callable[[], None]:
    # EphemeralMetrics per emit: Metrics keeps one metric set per process, which the worker's job threads would
    # mix (one thread's JobType dimension on another's values); an instance per emit is the thread-safe use.
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    units = {"Count": MetricUnit.Count, "Milliseconds": MetricUnit.Milliseconds}

    def run() -> None:
        emf = EphemeralMetrics(namespace=METRICS_NAMESPACE, service=SERVICE)
        emf.add_dimension(name=JOB_TYPE_DIMENSION, value="process_document")
        for name, (value, unit) in EMF_VALUES.items():
            emf.add_metric(name=name.value, unit=units[unit], value=value)
        with contextlib.redirect_stdout(sink):  # Powertools print()s the line
            emf.flush_metrics()

    return run


FACTORIES: list[tuple[str, Callable[[Sink], Callable[[], None]]]] = [
    ("log: hand-written", hand_written_log),
    ("log: powertools Logger", powertools_log),
    ("emf: hand-written", hand_written_emf),
    ("emf: powertools EphemeralMetrics", powertools_emf),
]


def measure(cases: list[Case], *, calls: int, rounds: int) -> dict[str, float]:
    """Median microseconds per call; the cases take turns in every round, so drift hits them alike."""
    samples: dict[str, list[float]] = {case.name: [] for case in cases}
    for case in cases:  # warm-up: imports, caches
        for _ in range(200):
            case.run()
    for _ in range(rounds):
        for case in cases:
            started = time.perf_counter()
            for _ in range(calls):
                case.run()
            samples[case.name].append((time.perf_counter() - started) / calls * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_observability", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000, help="calls per case per round (default 5000)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--show", action="store_true", help="print one line of each case instead of measuring")
    args = parser.parse_args(argv)
    logging.getLogger().handlers.clear()

    if args.show:  # alone: Powertools keeps the first stream a service's Logger was given
        for name, factory in FACTORIES:
            print(f"{name}:", flush=True)
            factory(Sink(echo=True))()
            REAL_STDOUT.flush()
        return 0

    cases = []
    for name, factory in FACTORIES:
        sink = Sink()
        cases.append(Case(name, factory(sink), sink))
    per_call = measure(cases, calls=args.calls, rounds=args.rounds)

    print(f"python {sys.version.split()[0]}, {args.rounds} rounds x {args.calls} calls per case, median per call")
    for case in cases:
        bytes_per_call = case.sink.chars / max(case.sink.lines, 1)
        print(f"  {case.name:34} {per_call[case.name]:8.2f} us   {bytes_per_call:6.0f} B/line")
    log_ratio = per_call["log: powertools Logger"] / per_call["log: hand-written"]
    emf_ratio = per_call["emf: powertools EphemeralMetrics"] / per_call["emf: hand-written"]
    print(f"  powertools / hand-written: log {log_ratio:.2f}x, emf {emf_ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
