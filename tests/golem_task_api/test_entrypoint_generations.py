"""Both published generations of the entrypoint serve an app."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable, Coroutine

import pytest

import golem_task_api as api
from golem_task_api.client import ProviderAppClient, TaskApiService
from golem_task_api.testutils import find_free_port
from golem_task_api.threading import Executor


class _InProcess(TaskApiService):
    """Runs an entrypoint coroutine as a task of this loop."""

    def __init__(self, serve: Callable[[list[str]], Coroutine[Any, Any, None]]) -> None:
        self._serve = serve
        self._task: "asyncio.Task[None] | None" = None

    async def start(self, command: str, port: int) -> tuple[str, int]:
        self._task = asyncio.create_task(self._serve(command.split()))
        return "127.0.0.1", port

    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def wait_until_shutdown_complete(self) -> None:
        if self._task is not None:
            await self._task


class _Benchmark(api.ProviderAppHandler):
    async def run_benchmark(self, work_dir: Path) -> float:
        return 3.25


@pytest.fixture(autouse=True)
def fresh_executor():
    Executor.initialize()
    yield
    Executor.initialize()


@pytest.mark.parametrize("generation", ["0.24.1", "0.24.7"])
def test_entrypoint_generation_serves(tmp_path: Path, generation: str) -> None:
    def serve(argv: list[str]) -> Coroutine[Any, Any, None]:
        if generation == "0.24.1":
            return api.entrypoint(tmp_path, argv, provider_handler=_Benchmark())
        return api.entrypoint.main(tmp_path, argv, provider_handler=_Benchmark())

    async def scenario() -> None:
        service = _InProcess(serve)
        client = await ProviderAppClient.create(service, find_free_port())
        try:
            assert await client.run_benchmark() == 3.25
            # The provider ends itself after its one request.
            await asyncio.wait_for(service.wait_until_shutdown_complete(), 5)
        finally:
            await client.shutdown()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_entrypoint_module_is_callable_and_has_main() -> None:
    import types
    assert isinstance(api.entrypoint, types.ModuleType)
    assert callable(api.entrypoint) and callable(api.entrypoint.main)
    coroutine = api.entrypoint(Path("."), ["bogus"])
    with pytest.raises(ValueError, match="usage"):
        asyncio.run(coroutine)
