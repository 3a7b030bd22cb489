"""The fork server: app servers forked from a process that imported the app once."""
from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
import pytest
from golem_task_api.client import ProviderAppClient
from golem_task_api.testutils import find_free_port

from tutorial_app.forkserver import ForkedService, ForkServer


@pytest.mark.timeout(60)
def test_forked_provider_serves_and_leaves_nothing_behind(tmp_path: Path) -> None:
    async def main() -> None:
        forkserver = ForkServer(tmp_path / "forkserver.log")
        await forkserver.start()
        try:
            work = tmp_path / "work"
            work.mkdir()
            service = ForkedService(forkserver, ["--work-dir", str(work)],
                                    {"TUTORIAL_APP_WORKERS": "1"}, tmp_path / "p.log")
            client = await ProviderAppClient.create(service, port=find_free_port())
            assert service.running() and service.pid is not None
            workers = psutil.Process(service.pid).children(recursive=True)
            assert workers  # the provider's engine pool
            score = await client.run_benchmark()
            assert score > 0
            await client.shutdown(5)
            assert service.returncode == 0
            assert "provider server" in (tmp_path / "p.log").read_text()
            gone, alive = psutil.wait_procs(workers, timeout=5)
            assert not alive
        finally:
            await forkserver.close()

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_closing_the_fork_server_kills_its_servers_and_their_workers(tmp_path: Path) -> None:
    async def main() -> list[psutil.Process]:
        forkserver = ForkServer()
        await forkserver.start()
        work = tmp_path / "work"
        work.mkdir()
        service = ForkedService(forkserver, ["--work-dir", str(work)], {"TUTORIAL_APP_WORKERS": "1"})
        client = await ProviderAppClient.create(service, port=find_free_port())
        assert service.pid is not None
        tree = [psutil.Process(service.pid), *psutil.Process(service.pid).children(recursive=True)]
        await forkserver.close()  # as when the node dies: nothing it started may stay
        assert not service.running()
        await client.shutdown(1)
        return tree

    tree = asyncio.run(main())
    gone, alive = psutil.wait_procs(tree, timeout=5)
    assert not alive


@pytest.mark.timeout(60)
def test_stop_ends_a_forked_server(tmp_path: Path) -> None:
    async def main() -> None:
        forkserver = ForkServer()
        await forkserver.start()
        try:
            work = tmp_path / "work"
            work.mkdir()
            service = ForkedService(forkserver, ["--work-dir", str(work)], {"TUTORIAL_APP_WORKERS": "1"})
            await service.start("provider " + str(find_free_port()), 0)
            await service.stop()
            assert not service.running() and service.returncode is not None
        finally:
            await forkserver.close()

    asyncio.run(main())
