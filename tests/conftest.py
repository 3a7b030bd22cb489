"""Fixtures shared by the whole suite.

Every test is checked for leaked child processes: a test that starts a
server, a pool or a subprocess and leaves it running fails, as loky's suite
does.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from multiprocessing import resource_tracker

import psutil
import pytest

# Children may take a moment to be reaped after their owner stopped them.
_LEAK_GRACE_SECONDS = 5.0


def _children() -> dict[int, psutil.Process]:
    try:
        return {p.pid: p for p in psutil.Process().children(recursive=True)}
    except psutil.Error:
        return {}


@pytest.fixture(scope="session", autouse=True)
def resource_tracker_running() -> None:
    """Start multiprocessing's resource tracker before any test runs.

    The engine's first spawned worker starts it and it lives as long as the
    test run; started here, the leak check does not blame whichever test
    happened to spawn first.
    """
    resource_tracker.ensure_running()


@pytest.fixture(autouse=True)
def no_leaked_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves a child process behind; kill the leftovers."""
    before = set(_children())
    yield
    if request.node.get_closest_marker("allow_leaks"):
        return
    deadline = time.monotonic() + _LEAK_GRACE_SECONDS
    leaked: dict[int, psutil.Process] = {}
    while True:
        leaked = {
            pid: p for pid, p in _children().items()
            if pid not in before and _alive(p)
        }
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if leaked:
        described = [_describe(p) for p in leaked.values()]
        for p in leaked.values():
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(list(leaked.values()), timeout=5)
        pytest.fail(f"test left child processes behind: {described}")


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _describe(p: psutil.Process) -> str:
    try:
        return f"{p.pid} {' '.join(p.cmdline())[:120]}"
    except psutil.Error:
        return str(p.pid)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_leaks: the test manages its own child processes' cleanup check"
    )
    config.addinivalue_line(
        "markers", "docker: needs a reachable Docker daemon and the built image"
    )


@pytest.fixture
def low_int_digit_limit() -> Iterator[None]:
    """Python's int/str conversion at its lowest allowed limit (640 digits)."""
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(before)
