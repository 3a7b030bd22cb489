"""Fixtures of the engine tests: shared pools, started before the per-test leak check."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine import Supervisor


@pytest.fixture(scope="module")
def python_pool() -> Iterator[Supervisor]:
    """A started three-worker pool on the pure-Python kernel."""
    with Supervisor(3, kernel="python") as supervisor:
        supervisor.start()
        yield supervisor
