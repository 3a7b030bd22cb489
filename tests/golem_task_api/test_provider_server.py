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
