"""A whole task through TaskLifecycleUtil, used exactly as published app tests use it.

The handlers are `unittest.mock` objects and closures: they reach the
forked InlineTaskApiService children as the very objects.
"""
from __future__ import annotations

import asyncio
import zipfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

import golem_task_api as api
from golem_task_api.dirutils import ProviderTaskDir, RequestorTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.testutils import TaskLifecycleUtil, find_free_port


def _requestor_handler(subtask_count: int) -> mock.Mock:
    """A mocked requestor app handing out subtask_count subtasks over one resource."""
    handed: list[str] = []
    handler = mock.Mock(spec=api.RequestorAppHandler)

    async def create_task(task_work_dir: RequestorTaskDir, max_subtasks_count: int,
                          task_params: dict[str, Any]) -> api.structs.Task:
        # Published apps call the layout's properties on what they get.
        text = (task_work_dir.task_inputs_dir / "input.txt").read_text()
        (task_work_dir.subtask_inputs_dir / "input.txt").write_text(text.upper())
        return api.envs.create_docker_cpu_task("app", "1.0", api.structs.Infrastructure())

    async def next_subtask(task_work_dir: RequestorTaskDir, subtask_id: str,
                           opaque_node_id: str) -> api.structs.Subtask:
        handed.append(subtask_id)
        return api.structs.Subtask(params={"n": len(handed)}, resources=["input.txt"])

    async def verify(task_work_dir: RequestorTaskDir, subtask_id: str) -> tuple[VerifyResult, None]:
        result = task_work_dir.subtask_outputs_dir(subtask_id) / "result.zip"
        with zipfile.ZipFile(result) as archive:
            archive.extractall(task_work_dir.task_outputs_dir)
        return VerifyResult.SUCCESS, None

    async def has_pending_subtasks(task_work_dir: RequestorTaskDir) -> bool:
        return len(handed) < subtask_count

    handler.create_task = mock.AsyncMock(side_effect=create_task)
    handler.next_subtask = mock.AsyncMock(side_effect=next_subtask)
    handler.verify = mock.AsyncMock(side_effect=verify)
    handler.has_pending_subtasks = mock.AsyncMock(side_effect=has_pending_subtasks)
    return handler


def _provider_handler() -> mock.Mock:
    handler = mock.Mock(spec=api.ProviderAppHandler)

    async def compute(task_work_dir: ProviderTaskDir, subtask_id: str,
                      subtask_params: dict[str, Any]) -> Path:
        assert isinstance(task_work_dir, ProviderTaskDir)
        text = (task_work_dir.subtask_inputs_dir / "input.txt").read_text()
        out_dir = task_work_dir.subtask_dir(subtask_id)
        out_dir.mkdir()
        with zipfile.ZipFile(out_dir / "result.zip", "w") as archive:
            archive.writestr(f"part{subtask_params['n']}.txt", f"{text} {subtask_params['n']}")
        return Path(subtask_id) / "result.zip"

    handler.compute = mock.AsyncMock(side_effect=compute)
    handler.run_benchmark = mock.AsyncMock(return_value=12.5)
    return handler


@pytest.mark.timeout(90)
def test_whole_task_with_mock_handlers(tmp_path: Path) -> None:
    resource = tmp_path / "input.txt"
    resource.write_text("payload")
    util = TaskLifecycleUtil(tmp_path / "node")
    requestor = _requestor_handler(2)
    provider = _provider_handler()

    async def scenario() -> list[str]:
        async with util.init_requestor_with_handler(requestor, port=find_free_port()) as client:
            assert client is util.requestor_client
            task = await util.create_task("task1", 2, [resource], {"difficulty": 1})
            assert task.env_id == "docker_cpu" and task.prerequisites == {"image": "app", "tag": "1.0"}
            task_dir = util.init_provider_with_handler(provider, "task1", port=find_free_port())
            assert isinstance(task_dir, ProviderTaskDir) and task_dir == util.prov_dir / "task1"
            subtask_ids = await util.compute_remaining_subtasks("task1", "node-1")
            assert await util.run_provider_benchmark() == 12.5
            return subtask_ids

    subtask_ids = asyncio.run(scenario())
    assert len(subtask_ids) == 2
    outputs = util.req_dir.task_dir("task1").task_outputs_dir
    assert {p.name: p.read_text() for p in outputs.iterdir()} == {
        "part1.txt": "PAYLOAD 1", "part2.txt": "PAYLOAD 2"}
    # The child served the mocks; the parent's copies saw no call (they are not shared).
    assert util.requestor_client is not None and util.provider_client is not None
    assert not util.requestor_client.service.running()


@pytest.mark.timeout(90)
def test_step_by_step_published_calls(tmp_path: Path) -> None:
    resource = tmp_path / "input.txt"
    resource.write_text("abc")
    util = TaskLifecycleUtil(tmp_path)
    requestor = _requestor_handler(1)
    # A closure as a provider handler: nothing picklable about it.
    seen: list[str] = []

    class ClosureProvider(api.ProviderAppHandler):
        async def compute(self, task_work_dir: ProviderTaskDir, subtask_id: str,
                          subtask_params: dict[str, Any]) -> Path:
            seen.append(subtask_id)  # in the child's copy of the list
            out = task_work_dir.subtask_dir(subtask_id)
            out.mkdir()
            with zipfile.ZipFile(out / "result.zip", "w") as archive:
                archive.writestr("only.txt", (task_work_dir.subtask_inputs_dir / "input.txt").read_text())
            return out / "result.zip"  # absolute: the runtime makes it relative

    async def scenario() -> tuple[str, VerifyResult]:
        async with util.init_requestor_with_handler(requestor, port=find_free_port()):
            await util.create_task("t", 1, [resource], {})
            util.init_provider_with_handler(ClosureProvider(), "t", port=find_free_port())
            return await util.compute_next_subtask("t", "node")

    subtask_id, verdict = asyncio.run(scenario())
    assert verdict is VerifyResult.SUCCESS
    assert (util.req_dir.task_dir("t").task_outputs_dir / "only.txt").read_text() == "ABC"
    assert (util.req_dir.subtask_outputs_dir("t", subtask_id) / "result.zip").is_file()


@pytest.mark.timeout(90)
def test_simulate_task_with_one_factory(tmp_path: Path) -> None:
    resource = tmp_path / "input.txt"
    resource.write_text("x")
    requestor, provider = _requestor_handler(3), _provider_handler()

    def service(work_dir: Path) -> api.TaskApiService:
        # Published tests give one factory serving both roles.
        return api.testutils.InlineTaskApiService(
            work_dir, requestor_handler=requestor, provider_handler=provider)

    util = TaskLifecycleUtil(tmp_path / "node")
    task_dir = asyncio.run(util.simulate_task(
        service, 3, {}, [resource],
        requestor_port=find_free_port(), provider_port=find_free_port()))
    assert isinstance(task_dir, RequestorTaskDir)
    assert sorted(p.name for p in task_dir.task_outputs_dir.iterdir()) == [
        "part1.txt", "part2.txt", "part3.txt"]
