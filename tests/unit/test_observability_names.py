"""Metric and log event names live in runtime/observability/names.py only, in one style, and every metric
named there is emitted somewhere (the dashboard side is checked in tests/infra/test_monitoring_and_checks.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from runtime.observability.names import LogEvent, Metric

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
NAMES_MODULE = RUNTIME / "observability" / "names.py"


def runtime_modules() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text()) for path in sorted(RUNTIME.rglob("*.py")) if path != NAMES_MODULE}


def calls_of(tree: ast.AST, name: str) -> list[ast.Call]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called == name:
                found.append(node)
    return found


def members_used(tree: ast.AST, enum_name: str) -> set[str]:
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == enum_name
    }


def test_log_events_are_snake_case_and_named_after_their_value() -> None:
    for event in LogEvent:
        assert re.fullmatch(r"[a-z]+(_[a-z0-9]+)*", event.value), event
        assert event.name.lower() == event.value, event


def test_metrics_are_pascal_case() -> None:
    for metric in Metric:
        assert re.fullmatch(r"(?:[A-Z][a-z0-9]+)+", metric.value), metric


def test_every_log_event_call_names_a_log_event_member() -> None:
    bad = []
    for path, tree in runtime_modules().items():
        for call in calls_of(tree, "log_event"):
            event = call.args[0] if call.args else None
            if not (
                isinstance(event, ast.Attribute) and isinstance(event.value, ast.Name) and event.value.id == "LogEvent"
            ):
                bad.append(f"{path.relative_to(RUNTIME.parent)}:{call.lineno}")
    assert bad == []


def test_no_metric_or_event_name_is_spelled_out_elsewhere_in_the_runtime() -> None:
    names = {metric.value for metric in Metric} | {event.value for event in LogEvent if event is not LogEvent.LOG}
    spelled = []
    for path, tree in runtime_modules().items():
        # An API error code may equal the event logged with it (job_store_unavailable): that is the contract's.
        error_codes = {
            id(arg)
            for name in ("error_response", "ApiError")
            for call in calls_of(tree, name)
            for arg in call.args[1:2]
        }
        spelled += [
            f"{path.relative_to(RUNTIME.parent)}:{node.lineno} {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in error_codes
        ]
    assert spelled == []


def test_every_metric_is_used_by_a_module_that_emits_metrics_and_every_event_is_logged() -> None:
    emitting = [tree for tree in runtime_modules().values() if calls_of(tree, "emit")]
    used_metrics = set().union(*(members_used(tree, "Metric") for tree in emitting))
    assert used_metrics == {metric.name for metric in Metric}
    used_events = set().union(*(members_used(tree, "LogEvent") for tree in runtime_modules().values()))
    assert used_events == {event.name for event in LogEvent}
