"""The lifecycle driver with the app servers as containers (DockerTaskApiService)."""
from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

import dockerutil
import engine
from golem_task_api.client import ProviderAppClient
from golem_task_api.dirutils import ProviderTaskDir, RequestorTaskDir
from golem_task_api.dockerservice import DockerTaskApiService
from golem_task_api.enums import VerifyResult
from golem_task_api.testutils import TaskLifecycleUtil, find_free_port
from grpclib.exceptions import GRPCError, StreamTerminatedError
from tutorial_app.archive import read_single_member
from tutorial_app.result import parse_result

pytestmark = pytest.mark.docker

ServiceFactory = Callable[[Path], DockerTaskApiService]

DIFFICULTY = 8
INPUT_TEXT = "containers all the way down, zażółć\n"
# Well inside `docker stop`'s grace: only a server that honours Shutdown is this quick.
PROMPT_SHUTDOWN_SECONDS = 5.0


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "input.txt"
    path.parent.mkdir()
    path.write_text(INPUT_TEXT, encoding="utf-8")
    return path


class Recording:
    """A service factory that keeps every service it made, to inspect them afterwards."""

    def __init__(self, factory: ServiceFactory) -> None:
        self.factory = factory
        self.services: list[DockerTaskApiService] = []

    def __call__(self, work_dir: Path) -> DockerTaskApiService:
        service = self.factory(work_dir)
        self.services.append(service)
        return service


def check_output(task_dir: RequestorTaskDir, result_zip: Path) -> None:
    """A merged result verifies with the engine against the input the requestor gave."""
    subtask_id = result_zip.stem
    digest, nonce = parse_result(read_single_member(result_zip))
    text = read_single_member(task_dir.subtask_inputs_dir / f"{subtask_id}.zip")
    assert text.startswith(INPUT_TEXT)
    engine.verify(text, DIFFICULTY, digest, nonce)


@pytest.mark.timeout(120)
def test_whole_task_with_every_server_in_a_container(
    tmp_path: Path, input_file: Path, docker_service: ServiceFactory,
    containers: dockerutil.ContainerSet,
) -> None:
    requestors, providers = Recording(docker_service), Recording(docker_service)

    async def scenario() -> None:
        async with TaskLifecycleUtil(tmp_path / "node") as util:
            await util.init_requestor(requestors)
            await util.start_task(
                3, {"difficulty": DIFFICULTY, "resources": ["input.txt"], "subtasks_count": 3},
                [input_file])
            outcomes = await util.compute_remaining_subtasks(providers)
            assert [o.result for o in outcomes] == [VerifyResult.SUCCESS] * 3, outcomes
            outputs = sorted(util.task_dir.task_outputs_dir.iterdir())
            assert [p.name for p in outputs] == sorted(f"{o.subtask_id}.zip" for o in outcomes)
            for output in outputs:
                check_output(util.task_dir, output)

    asyncio.run(scenario())
    assert len(requestors.services) == 1 and len(providers.services) == 3
    for service in requestors.services + providers.services:
        assert not service.running()
        # 0: each server ended through the API (Shutdown, or a provider's one request).
        assert service.exit_code == 0, service.name
    assert containers.listed() == []


@pytest.mark.timeout(90)
def test_provider_container_shut_down_mid_compute_stops_promptly(
    tmp_path: Path, input_file: Path, docker_service: ServiceFactory,
    containers: dockerutil.ContainerSet,
) -> None:
    """Shutdown while the provider searches at difficulty 256 (which never succeeds)."""

    async def scenario() -> tuple[float, DockerTaskApiService]:
        async with TaskLifecycleUtil(tmp_path / "node") as util:
            await util.init_requestor(docker_service)
            await util.start_task(1, {"difficulty": 256, "resources": ["input.txt"]}, [input_file])
            subtask_id, subtask = await util.get_next_subtask()
            assert subtask is not None
            provider_dir = ProviderTaskDir(tmp_path / "provider")
            provider_dir.prepare()
            for name in subtask.resources:
                shutil.copy(util.task_dir.subtask_inputs_dir / name, provider_dir.subtask_inputs_dir / name)
            service = docker_service(Path(provider_dir))
            client = await ProviderAppClient.create(service, find_free_port())
            compute = asyncio.ensure_future(client.compute(util.task_id or "", subtask_id, subtask.params))
            try:
                await _until_searching(service, compute)
                started = time.monotonic()
                await client.shutdown(timeout=10)
                elapsed = time.monotonic() - started
            finally:
                await client.shutdown(timeout=1)
            with pytest.raises((GRPCError, StreamTerminatedError, OSError)):
                await compute
            assert not (Path(provider_dir) / f"{subtask_id}.zip").exists()
            return elapsed, service

    elapsed, service = asyncio.run(scenario())
    assert not service.running()
    # Not 137 (SIGKILL) nor 143: the app shut itself down on the Shutdown call.
    assert service.exit_code == 0
    assert elapsed < PROMPT_SHUTDOWN_SECONDS, f"shutdown took {elapsed:.2f} s"
    assert containers.listed() == []
    print(f"provider container shut down mid-compute in {elapsed * 1000:.0f} ms")


async def _until_searching(service: DockerTaskApiService, compute: asyncio.Future[Path]) -> None:
    """Return once a process in the container burns CPU (the engine's worker searching)."""
    assert service.container_id is not None
    pid = int(dockerutil.docker("inspect", "--format", "{{.State.Pid}}", service.container_id).stdout)
    server = psutil.Process(pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert not compute.done(), compute
        processes = [server, *server.children(recursive=True)]
        before = [sum(p.cpu_times()[:2]) for p in processes]
        await asyncio.sleep(0.3)
        if any(sum(p.cpu_times()[:2]) - b > 0.1 for p, b in zip(processes, before)
               if p.pid != pid):
            return
    raise AssertionError("the provider's search never got busy")
