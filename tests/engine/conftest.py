"""Fixtures of the engine tests: shared pools, started before the per-test leak check."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine import Supervisor


@pytest.fixture(scope="module")
def python_pool() -> Iterator[Supervisor]:
    """A booted three-worker pool on the pure-Python kernel."""
    with Supervisor(3, kernel="python") as supervisor:
        # Booted, not only started: on a loaded machine the first workers'
        # imports take longer than a short test's timing allows.
        supervisor.search("boot", 0)
        yield supervisor
