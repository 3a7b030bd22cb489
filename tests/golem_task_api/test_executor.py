"""threading.Executor: nothing starts after shutdown; the wait is awaitable."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from golem_task_api.threading import Executor


@pytest.fixture(autouse=True)
def fresh_executor():
    Executor.initialize()
    yield
    Executor.initialize()


def test_run_after_shutdown_does_not_start_func() -> None:
    started = threading.Event()

    async def scenario() -> object:
        Executor.request_shutdown()
        return await Executor.run(started.set)

    assert asyncio.run(scenario()) is None
    assert not started.is_set()


def test_shutdown_while_queued_does_not_start_func() -> None:
    # Every worker thread of a one-thread pool is busy: the second call waits
    # for a thread, and shutdown comes before it gets one.
    release = threading.Event()
    started = threading.Event()

    async def scenario() -> object:
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(1)
        asyncio.get_running_loop().set_default_executor(pool)
        busy = asyncio.create_task(Executor.run(release.wait, 5))
        queued = asyncio.create_task(Executor.run(started.set))
        await asyncio.sleep(0.05)
        Executor.request_shutdown()
        release.set()
        await busy
        return await queued

    assert asyncio.run(scenario()) is None
    assert not started.is_set()


def test_wait_for_shutdown_waits_for_running_calls() -> None:
    def work() -> str:
        while not Executor.is_shutting_down():
            time.sleep(0.005)
        time.sleep(0.2)  # winds down for a while after seeing the flag
        return "done"

    async def scenario() -> tuple[bool, float, str]:
        running = asyncio.create_task(Executor.run(work))
        await asyncio.sleep(0.05)
        assert await Executor.wait_for_shutdown(timeout=0.01) is False
        threading.Thread(target=Executor.request_shutdown).start()  # from another thread
        started = time.monotonic()
        idle = await Executor.wait_for_shutdown()
        waited = time.monotonic() - started
        return idle, waited, await running

    idle, waited, result = asyncio.run(scenario())
    assert idle is True and result == "done"
    assert 0.15 < waited < 2.0
    assert Executor.is_shutting_down()
