"""InlineTaskApiService: forked children, str commands, and no orphan ever."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from golem_task_api.client import RequestorAppClient
from golem_task_api.testutils import InlineTaskApiService, find_free_port

# A parent that starts an inline requestor, reports the child's pid, and waits to be killed.
_PARENT = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from unittest import mock
    import golem_task_api as api
    from golem_task_api.testutils import InlineTaskApiService

    async def main() -> None:
        handler = mock.Mock(spec=api.RequestorAppHandler)
        handler.run_benchmark = mock.AsyncMock(return_value=1.0)
        service = InlineTaskApiService(Path(sys.argv[1]), requestor_handler=handler)
        client = await api.RequestorAppClient.create(service, int(sys.argv[2]))
        assert await client.run_benchmark() == 1.0
        Path(sys.argv[3]).write_text(str(service.pid))
        await asyncio.sleep(60)

    asyncio.run(main())
""")


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.timeout(60)
def test_child_dies_when_its_parent_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path), str(find_free_port()), str(marker)])
    child_pid = None
    try:
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text()):
            assert parent.poll() is None, "the parent failed"
            assert time.monotonic() < deadline, "the child never served"
            time.sleep(0.02)
        child_pid = int(marker.read_text())
        assert psutil.Process(child_pid).ppid() == parent.pid
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        killed_at = time.monotonic()
        assert _gone(child_pid, within=3.0), "the inline child outlived its killed parent"
        print(f"child gone {time.monotonic() - killed_at:.3f} s after its parent's SIGKILL")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child_pid is not None and not _gone(child_pid, 0):
            os.kill(child_pid, signal.SIGKILL)


def test_str_and_list_commands_and_exit_code(tmp_path: Path) -> None:
    from unittest import mock
    import golem_task_api as api

    handler = mock.Mock(spec=api.RequestorAppHandler)
    handler.run_benchmark = mock.AsyncMock(side_effect=lambda work_dir: 2.0)

    async def scenario(command_as_list: bool) -> int:
        service = InlineTaskApiService(tmp_path, requestor_handler=handler)
        port = find_free_port()
        command = ["requestor", str(port)] if command_as_list else f"requestor {port}"
        host, port = await service.start(command, port)
        channel_client = RequestorAppClient(
            service, __import__("golem_task_api.proto.golem_task_api_grpc", fromlist=["x"])
            .RequestorAppStub(await _serving_channel(service, host, port)))
        assert await channel_client.run_benchmark() == 2.0
        await channel_client.shutdown()
        assert not service.running()
        return service.returncode  # type: ignore[return-value]

    assert asyncio.run(scenario(False)) == 0
    assert asyncio.run(scenario(True)) == 0


async def _serving_channel(service: InlineTaskApiService, host: str, port: int):  # type: ignore[no-untyped-def]
    from grpclib.client import Channel
    from golem_task_api.client import wait_until_serving
    channel = Channel(host, port)
    await wait_until_serving(channel, service)
    return channel


def test_stop_kills_a_child_ignoring_sigterm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from golem_task_api.testutils import inlinetaskapiservice
    import golem_task_api as api

    monkeypatch.setattr(inlinetaskapiservice, "STOP_GRACE_SECONDS", 0.3)

    class Stubborn(api.AppLifecycleHandler):
        async def on_before_startup(self) -> None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            await asyncio.sleep(60)

    async def scenario() -> InlineTaskApiService:
        service = InlineTaskApiService(tmp_path, requestor_handler=api.RequestorAppHandler(),
                                       requestor_lifecycle_handler=Stubborn())
        await service.start("requestor 1", 1)
        await asyncio.sleep(0.3)
        await service.stop()
        return service

    service = asyncio.run(scenario())
    assert service.returncode == -signal.SIGKILL
