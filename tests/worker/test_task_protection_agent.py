"""TaskProtection step by step (apply() without its thread, on a hand-moved clock) against a real HTTP server
standing in for the ECS agent: which PUTs it sends, renewal before expiry, nothing redundant, failures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from runtime.settings import SettingsError, load_settings
from runtime.worker.task_protection import (
    AGENT_TIMEOUT_S,
    FAILURE_EVENT,
    FAILURE_METRIC,
    TaskProtection,
    expires_in_minutes,
    renew_window_s,
)
from tests.conftest import free_port
from tests.worker.ecs_agent import AGENT_PATH, AgentRequest, FakeEcsAgent

STATE_PATH = f"{AGENT_PATH}/task-protection/v1/state"
INTERVAL_S = 20.0  # the production heartbeat: visibility timeout 60 s / 3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def put(body: dict[str, object]) -> AgentRequest:
    return AgentRequest("PUT", STATE_PATH, "application/json", body)


@pytest.fixture
def agent() -> Iterator[FakeEcsAgent]:
    server = FakeEcsAgent()
    yield server
    server.close()


@pytest.mark.parametrize(
    ("interval_s", "minutes"),
    [(2 / 3, 1), (20.0, 1), (38.0, 1), (40.0, 2), (60.0, 2), (14_400.0, 242)],
)
def test_expiry_is_a_little_longer_than_the_heartbeat_interval(interval_s: float, minutes: int) -> None:
    assert expires_in_minutes(interval_s) == minutes
    # Longer than the interval and its renew window: a fresh protection is never due again at once.
    assert interval_s < renew_window_s(interval_s) < minutes * 60


def test_protect_renew_before_expiry_and_unprotect_with_nothing_redundant(agent: FakeEcsAgent) -> None:
    clock = Clock()
    protection = TaskProtection(agent.url, heartbeat_interval_s=INTERVAL_S, monotonic=clock)
    minutes = protection.expires_in_minutes
    protect = put({"ProtectionEnabled": True, "ExpiresInMinutes": minutes})
    unprotect = put({"ProtectionEnabled": False})

    assert protection.apply() is False  # idle from the start: the task is unprotected already
    protection.busy()
    assert protection.apply() is True
    assert protection.apply() is False
    protection.busy()  # another job while busy: no change
    assert protection.apply() is False
    assert agent.requests() == [protect]

    # Beats with more than the renew window left send nothing; the first beat inside it renews.
    expires_at = clock.now + minutes * 60
    clock.now = expires_at - renew_window_s(INTERVAL_S) - 1
    protection.beat()
    assert protection.apply() is False
    clock.now = expires_at - renew_window_s(INTERVAL_S) + 1
    protection.beat()
    assert protection.apply() is True
    assert protection.apply() is False
    assert agent.requests() == [protect, protect]

    protection.idle()
    assert protection.apply() is True
    protection.beat()
    assert protection.apply() is False
    assert agent.requests() == [protect, protect, unprotect]


def test_the_thread_sends_the_puts_and_stop_unprotects(agent: FakeEcsAgent) -> None:
    protection = TaskProtection(agent.url, heartbeat_interval_s=INTERVAL_S)
    protection.start()
    protection.busy()
    ends = time.monotonic() + 30
    while not agent.requests() and time.monotonic() < ends:
        time.sleep(0.02)
    protection.stop()
    minutes = protection.expires_in_minutes
    assert agent.requests() == [
        put({"ProtectionEnabled": True, "ExpiresInMinutes": minutes}),
        put({"ProtectionEnabled": False}),
    ]
    protection.busy()  # after stop: ignored
    assert protection.apply() is False


def test_a_refused_update_is_logged_counted_and_retried_at_the_next_beat(
    capsys: pytest.CaptureFixture[str],
) -> None:
    agent = FakeEcsAgent(status=500)
    try:
        protection = TaskProtection(agent.url, heartbeat_interval_s=INTERVAL_S, monotonic=Clock())
        protection.busy()
        assert protection.apply() is True
        protection.idle()
        protection.busy()
        assert protection.apply() is False  # no retry before the next beat, whatever the jobs do
        protection.beat()
        assert protection.apply() is True
        assert [request.body["ProtectionEnabled"] for request in agent.requests()] == [True, True]
    finally:
        agent.close()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    failures = [line for line in lines if line.get("event") == FAILURE_EVENT]
    assert len(failures) == 2 and all("http 500" in f["error"] and f["level"] == "warning" for f in failures)
    assert sum(line.get(FAILURE_METRIC, 0) for line in lines) == 2


def test_a_failure_reported_in_a_200_answer_counts_as_failed(capsys: pytest.CaptureFixture[str]) -> None:
    # The agent reports ECS's refusal (e.g. throttling) in the body of a 200; the fake answers with that shape.
    agent = FakeEcsAgent(answer={"failure": {"Arn": "task", "Reason": "THROTTLED", "Detail": None}})
    try:
        protection = TaskProtection(agent.url, heartbeat_interval_s=INTERVAL_S, monotonic=Clock())
        protection.busy()
        assert protection.apply() is True
    finally:
        agent.close()
    failures = [json.loads(line) for line in capsys.readouterr().out.splitlines() if FAILURE_EVENT in line]
    assert len(failures) == 1 and "THROTTLED" in failures[0]["error"]


def test_an_unreachable_agent_fails_at_once_and_a_silent_one_within_the_timeout() -> None:
    closed = TaskProtection(f"http://127.0.0.1:{free_port()}", heartbeat_interval_s=INTERVAL_S)
    closed.busy()
    started = time.monotonic()
    assert closed.apply() is True
    assert time.monotonic() - started < AGENT_TIMEOUT_S

    agent = FakeEcsAgent(hang=True)
    try:
        silent = TaskProtection(agent.url, heartbeat_interval_s=INTERVAL_S)
        silent.busy()
        started = time.monotonic()
        assert silent.apply() is True
        # Cut off by the timeout (a generous upper bound: the machine may be busy), not by the 60 s hang.
        assert time.monotonic() - started < AGENT_TIMEOUT_S + 5
        assert len(agent.requests()) == 1
    finally:
        agent.close()


def test_ecs_agent_uri_is_read_from_its_own_variable_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    required = {
        "table_name": "t",
        "access_table_name": "a",
        "queue_url": "q",
        "dead_letter_queue_url": "d",
        "documents_bucket": "b",
    }
    monkeypatch.setenv("ECS_AGENT_URI", "http://169.254.170.2/api/abc-1/")
    assert load_settings(**required).ecs_agent_uri == "http://169.254.170.2/api/abc-1"
    monkeypatch.setenv("ECS_AGENT_URI", "")
    assert load_settings(**required).ecs_agent_uri is None
    monkeypatch.setenv("ECS_AGENT_URI", "169.254.170.2/api")
    with pytest.raises(SettingsError, match=r"^bad configuration: ECS_AGENT_URI: .*'169.254.170.2/api'"):
        load_settings(**required)
