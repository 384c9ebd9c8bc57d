"""The chaos suite's short plan (benchmarks/chaos.py, `make chaos` runs the full one): jobs of every type through a
well-behaved client while the worker and the API are SIGKILLed, the emulator is frozen and a proxy injects AWS
errors, throttles and latency into the children's DynamoDB and SQS calls. Nothing is lost, duplicated or stuck."""

from __future__ import annotations

import pytest

from benchmarks.chaos import SHORT, run

pytestmark = pytest.mark.slow


def test_short_chaos_plan_keeps_every_promise() -> None:
    report = run(SHORT)
    figures = "\n".join(report.lines())
    print(figures)
    assert report.accepted == SHORT.jobs, figures
    assert report.lost == [] and report.duplicated == [] and report.stuck == [], figures
    assert report.unexpected_outcome == [] and report.unexpected_answers == [], figures
    assert report.answers.server_errors == 0, figures
    assert report.answers.refusals_without_retry_after == 0, figures
    assert report.extra_executions <= report.extra_executions_bound, figures
    # The disruptions happened and the children's calls went through the proxy, faults included.
    disruptions = report.disruptions
    assert (disruptions.worker_kills, disruptions.api_kills, disruptions.freezes) == (1, 1, 1), figures
    assert disruptions.errors == [], figures
    assert report.faults["dynamodb requests"] > 0 and report.faults["sqs requests"] > 0, figures
    injected = sum(count for name, count in report.faults.items() if not name.endswith("requests"))
    assert injected > 0, figures
    assert report.failures == [], figures
