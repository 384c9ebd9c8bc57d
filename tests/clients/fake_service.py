"""A scripted stand-in for the service behind httpx.MockTransport, for unit tests of the client's own logic
(retries, waits, error mapping); the integration tests talk to the real local all-in-one instead."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def job_json(job_id: str = "job-1", status: str = "PENDING", **extra: Any) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "tenant": "t1",
        "status": status,
        "jobType": "transform_data",
        "priority": "normal",
        "params": {"records": []},
        "metadata": {},
        "attempts": 0,
        "result": None,
        "error": None,
        "createdAt": "2026-12-02T03:00:00.000Z",
        "updatedAt": "2026-12-02T03:00:01.000Z",
        "traceId": "trace-1",
        "transitions": {"PENDING": "2026-12-02T03:00:00.000Z"},
        "cancelRequested": False,
        **extra,
    }


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def error(status: int, code: str, detail: str = "something", headers: dict[str, str] | None = None) -> httpx.Response:
    return answer(status, {"error": code, "detail": detail}, headers)


@dataclass
class Script:
    """Answers requests in order from `answers`; records every request it saw."""

    answers: list[Answer]
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.answers:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        next_answer = self.answers.pop(0)
        if isinstance(next_answer, Exception):
            raise next_answer
        if callable(next_answer):
            return next_answer(request)
        return next_answer

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        return self.handle(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def async_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle_async)

    def bodies(self) -> list[Any]:
        return [json.loads(request.content) if request.content else None for request in self.requests]


class FakeTime:
    """A monotonic clock that only moves when the client sleeps (or a request 'takes' time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)
