"""One local all-in-one (`python -m runtime.local`, as tests/e2e start it) shared by the client tests that need a
real service; the unit tests never start it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.local_system import LocalSystem, running_system


@pytest.fixture(scope="package")
def system() -> Iterator[LocalSystem]:
    with running_system() as local:
        yield local
