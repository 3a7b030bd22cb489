"""AppLifecycleHandler.request_shutdown: idempotent, and effective from any thread."""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

import golem_task_api as api
from golem_task_api.threading import Executor


class _Idle(api.ProviderAppHandler):
    async def compute(self, task_work_dir, subtask_id, subtask_params):  # type: ignore[no-untyped-def]
        raise AssertionError("not called")

    async def run_benchmark(self, work_dir: Path) -> float:
        raise AssertionError("not called")


@pytest.fixture(autouse=True)
def fresh_executor():
    Executor.initialize()
    yield
    Executor.initialize()


def test_request_shutdown_from_another_thread_stops_the_server_at_once(tmp_path: Path) -> None:
    requested_at: list[float] = []

    class StopFromThread(api.AppLifecycleHandler):
        async def on_after_startup(self) -> None:
            def request() -> None:
                requested_at.append(time.monotonic())
                self.request_shutdown()
                self.request_shutdown()  # idempotent

            # Nothing else happens on the server's loop: no I/O to wake it.
            threading.Timer(0.1, request).start()

    async def scenario() -> float:
        await asyncio.wait_for(
            api.entrypoint.main(tmp_path, ["provider", "0"],
                                provider_handler=_Idle(),
                                provider_lifecycle_handler=StopFromThread()),
            5)
        return time.monotonic()

    stopped_at = asyncio.run(scenario())
    latency = stopped_at - requested_at[0]
    assert latency < 0.5, f"server stopped {latency:.3f} s after the request"
    assert Executor.is_shutting_down()


def test_request_shutdown_before_the_server_started(tmp_path: Path) -> None:
    lifecycle = api.AppLifecycleHandler()
    lifecycle.request_shutdown()  # no loop yet: remembered

    async def scenario() -> None:
        await asyncio.wait_for(
            api.entrypoint.main(tmp_path, ["provider", "0"],
                                provider_handler=_Idle(),
                                provider_lifecycle_handler=lifecycle),
            5)

    asyncio.run(scenario())
