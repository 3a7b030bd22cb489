"""ProviderApp end to end: one request per process, Shutdown interrupts Compute."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from golem_task_api.client import ProviderAppClient
from golem_task_api.dirutils import ProviderTaskDir
from golem_task_api.testutils import InlineTaskApiService, find_free_port

from gta_fakes import STARTED_MARKER, FakeProviderHandler, RecordingLifecycle, wait_for_file


def _provider_dir(tmp_path: Path) -> ProviderTaskDir:
    work_dir = ProviderTaskDir(tmp_path / "provider")
    work_dir.prepare()
    (work_dir.subtask_inputs_dir / "input.txt").write_text("xyz")
    return work_dir


def test_compute_returns_relative_output_then_process_exits(tmp_path: Path) -> None:
    work_dir = _provider_dir(tmp_path)
    lifecycle_log = tmp_path / "lifecycle.log"

    async def scenario() -> None:
        service = InlineTaskApiService(
            work_dir,
            provider_handler=FakeProviderHandler(),
            provider_lifecycle_handler=RecordingLifecycle(lifecycle_log),
        )
        client = await ProviderAppClient.create(service, find_free_port())
        try:
            output = await client.compute("task", "sub1", {"index": 3})
            assert output == Path("sub1/result.txt")
            assert (work_dir / output).read_text() == "good 3 xyz"
            # Nobody asked it to stop: it ends by itself after its one request.
            await asyncio.wait_for(service.wait_until_shutdown_complete(), 10)
            assert service.exitcode == 0
        finally:
            await client.shutdown()

    asyncio.run(scenario())
    assert lifecycle_log.read_text().split() == [
        "before_startup", "after_startup", "before_shutdown", "after_shutdown",
    ]


def test_run_benchmark_then_process_exits(tmp_path: Path) -> None:
    async def scenario() -> None:
        service = InlineTaskApiService(_provider_dir(tmp_path), provider_handler=FakeProviderHandler())
        client = await ProviderAppClient.create(service, find_free_port())
        try:
            assert await client.run_benchmark() == pytest.approx(7.25)
            await asyncio.wait_for(service.wait_until_shutdown_complete(), 10)
            assert service.exitcode == 0
        finally:
            await client.shutdown()

    asyncio.run(scenario())


def test_shutdown_interrupts_a_running_compute(tmp_path: Path) -> None:
    work_dir = _provider_dir(tmp_path)

    async def scenario() -> None:
        service = InlineTaskApiService(work_dir, provider_handler=FakeProviderHandler())
        client = await ProviderAppClient.create(service, find_free_port())
        try:
            compute = asyncio.create_task(client.compute("task", "sub1", {"block": True}))
            await wait_for_file(work_dir / STARTED_MARKER)
            await client.shutdown(timeout=10)
            # The blocked computation saw is_shutting_down() and gave up.
            with pytest.raises(GRPCError) as raised:
                await compute
            assert raised.value.status is Status.INTERNAL
            assert "interrupted" in (raised.value.message or "")
            assert service.exitcode == 0
            await client.shutdown()  # a second shutdown is harmless
        finally:
            await client.shutdown()

    asyncio.run(scenario())


def test_bad_params_json_is_invalid_argument_and_still_ends_the_process(tmp_path: Path) -> None:
    from golem_task_api.proto import golem_task_api_pb2 as pb

    async def scenario() -> None:
        service = InlineTaskApiService(_provider_dir(tmp_path), provider_handler=FakeProviderHandler())
        client = await ProviderAppClient.create(service, find_free_port())
        try:
            with pytest.raises(GRPCError) as raised:
                await client._stub.Compute(
                    pb.ComputeRequest(task_id="t", subtask_id="s", subtask_params_json="[1]")
                )
            assert raised.value.status is Status.INVALID_ARGUMENT
            await asyncio.wait_for(service.wait_until_shutdown_complete(), 10)
            assert service.exitcode == 0
        finally:
            await client.shutdown()

    asyncio.run(scenario())



class _HeldStream:
    """A server-side stream whose request arrives when the test releases it."""

    def __init__(self, request: object) -> None:
        self.request = request
        self.arrived = asyncio.Event()
        self.status: object = None

    async def recv_message(self) -> object:
        await self.arrived.wait()
        return self.request

    async def send_message(self, message: object) -> None:
        pass

    async def send_trailing_metadata(self, status: object = Status.OK, status_message: object = None) -> None:
        self.status = status


class _HeldComputeHandler(FakeProviderHandler):
    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def compute(self, task_work_dir: Path, subtask_id: str, subtask_params: dict) -> Path:
        await self.release.wait()
        return Path("out")


def test_a_second_request_arriving_at_once_does_not_end_the_first(tmp_path: Path) -> None:
    from golem_task_api.handlers import AppLifecycleHandler
    from golem_task_api.proto import golem_task_api_pb2 as pb
    from golem_task_api.server import ProviderApp
    from golem_task_api.threading import Executor

    class Lifecycle(AppLifecycleHandler):
        pass

    async def scenario() -> None:
        handler, lifecycle = _HeldComputeHandler(), Lifecycle()
        server = ProviderApp(tmp_path, handler, lifecycle)
        first = _HeldStream(pb.ComputeRequest(task_id="t", subtask_id="s", subtask_params_json="{}"))
        second = _HeldStream(pb.RunBenchmarkRequest())
        # Both calls are in the server before either request body is read.
        first_call = asyncio.create_task(server.Compute(first))
        second_call = asyncio.create_task(server.RunBenchmark(second))
        await asyncio.sleep(0)
        first.arrived.set()
        await asyncio.sleep(0.01)
        second.arrived.set()
        await second_call
        assert second.status is Status.FAILED_PRECONDITION
        assert not lifecycle.shutdown_future.done()
        handler.release.set()
        await first_call
        assert first.status is Status.OK
        assert lifecycle.shutdown_future.done()

    try:
        asyncio.run(scenario())
    finally:
        Executor.initialize()


def test_a_rejected_second_request_does_not_end_the_running_one(tmp_path: Path) -> None:
    work_dir = _provider_dir(tmp_path)

    async def scenario() -> None:
        service = InlineTaskApiService(work_dir, provider_handler=FakeProviderHandler())
        client = await ProviderAppClient.create(service, find_free_port())
        try:
            compute = asyncio.create_task(client.compute("task", "sub1", {"block": True}))
            await wait_for_file(work_dir / STARTED_MARKER)
            with pytest.raises(GRPCError) as raised:
                await client.run_benchmark(timeout=10)
            assert raised.value.status is Status.FAILED_PRECONDITION
            # Only the call that took the one request may end the process.
            await asyncio.sleep(0.5)
            assert not compute.done()
            assert service.running()
            await client.shutdown(timeout=10)
            with pytest.raises(GRPCError):
                await compute
        finally:
            await client.shutdown()

    asyncio.run(scenario())
