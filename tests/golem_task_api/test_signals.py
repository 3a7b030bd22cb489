"""SIGTERM and SIGINT stop a server process cleanly: exit code 0, no children left."""
from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import psutil
import pytest

from golem_task_api.client import ProviderAppClient, RequestorAppClient
from golem_task_api.dirutils import ProviderTaskDir, RequestorDir
from golem_task_api.testutils import InlineTaskApiService, find_free_port

from gta_fakes import STARTED_MARKER, FakeProviderHandler, FakeRequestorHandler, RecordingLifecycle, wait_for_file


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_requestor_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}

    async def scenario() -> None:
        service = InlineTaskApiService(tmp_path, requestor_handler=FakeRequestorHandler())
        client = await RequestorAppClient.create(service, find_free_port())
        try:
            RequestorDir(tmp_path).task_dir("t").prepare()
            await client.create_task("t", 1, {})
            assert service.pid is not None
            os.kill(service.pid, sig)
            await asyncio.wait_for(service.wait_until_shutdown_complete(), 10)
            assert service.exitcode == 0
            children = {p.pid for p in psutil.Process().children(recursive=True)}
            assert children <= children_before
        finally:
            await client.shutdown()

    asyncio.run(scenario())


def test_sigterm_interrupts_provider_compute(tmp_path: Path) -> None:
    work_dir = ProviderTaskDir(tmp_path / "provider")
    work_dir.prepare()
    lifecycle_log = tmp_path / "lifecycle.log"

    async def scenario() -> None:
        service = InlineTaskApiService(
            work_dir,
            provider_handler=FakeProviderHandler(),
            provider_lifecycle_handler=RecordingLifecycle(lifecycle_log),
        )
        client = await ProviderAppClient.create(service, find_free_port())
        try:
            compute = asyncio.create_task(client.compute("t", "s", {"block": True}))
            await wait_for_file(work_dir / STARTED_MARKER)
            assert service.pid is not None
            os.kill(service.pid, signal.SIGTERM)
            await asyncio.wait_for(service.wait_until_shutdown_complete(), 10)
            assert service.exitcode == 0
            await asyncio.gather(compute, return_exceptions=True)
        finally:
            await client.shutdown()

    asyncio.run(scenario())
    assert lifecycle_log.read_text().split()[-2:] == ["before_shutdown", "after_shutdown"]
