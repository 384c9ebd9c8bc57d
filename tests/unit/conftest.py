"""Fixtures the unit tests of the submit use cases share: a JobService over in-memory fakes."""

from __future__ import annotations

import pytest

from runtime.domain.submit import JobService
from tests.unit.fakes import FakeClock, FakeQueue, InMemoryJobStore
from tests.unit.job_service_support import service_of


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> InMemoryJobStore:
    return InMemoryJobStore()


@pytest.fixture
def queue() -> FakeQueue:
    return FakeQueue()


@pytest.fixture
def service(store: InMemoryJobStore, queue: FakeQueue, clock: FakeClock) -> JobService:
    return service_of(store, queue, clock)
