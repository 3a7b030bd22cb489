"""Every RequestorApp RPC end to end over a real socket, served by a child process."""
from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from golem_task_api import constants, envs, structs
from golem_task_api.client import RequestorAppClient
from golem_task_api.dirutils import RequestorDir
from golem_task_api.enums import VerifyResult
from golem_task_api.testutils import InlineTaskApiService, find_free_port

from gta_fakes import FakeRequestorHandler


async def _start(work_dir: Path) -> tuple[RequestorAppClient, InlineTaskApiService]:
    service = InlineTaskApiService(work_dir, requestor_handler=FakeRequestorHandler())
    client = await RequestorAppClient.create(service, find_free_port())
    return client, service


def _prepare_task(work_dir: Path, task_id: str, resource_text: str = "abc") -> Path:
    task_dir = RequestorDir(work_dir).task_dir(task_id)
    task_dir.prepare()
    (task_dir.task_inputs_dir / "input.txt").write_text(resource_text)
    return task_dir


@pytest.mark.timeout(90)
def test_every_requestor_rpc(tmp_path: Path) -> None:
    async def scenario() -> None:
        client, service = await _start(tmp_path)
        try:
            task_dir = _prepare_task(tmp_path, "t1")
            task = await client.create_task("t1", 2, {"tag": "2.5"})
            assert task == structs.Task(
                env_id=envs.DOCKER_CPU_ENV_ID,
                prerequisites={"image": "fake/app", "tag": "2.5"},
                inf_requirements=structs.Infrastructure(min_memory_mib=256.0),
            )
            assert await client.has_pending_subtasks("t1") is True
            assert await client.next_subtask("t1", "s0", "banned") is None

            first = await client.next_subtask("t1", "s1", "node-a")
            assert first == structs.Subtask(params={"index": 0, "node": "node-a"}, resources=["input.txt"])
            second = await client.next_subtask("t1", "s2", "node-b")
            assert second is not None and second.params["index"] == 1
            assert await client.has_pending_subtasks("t1") is False
            assert await client.next_subtask("t1", "s3", "node-c") is None

            assert await client.verify("t1", "s1") == (VerifyResult.AWAITING_DATA, "")
            out1 = task_dir.subtask_outputs_dir("s1")
            out1.mkdir()
            (out1 / "result.txt").write_text("good 0")
            assert await client.verify("t1", "s1") == (VerifyResult.SUCCESS, "")
            assert (task_dir.task_outputs_dir / "s1.txt").read_text() == "good 0"
            out2 = task_dir.subtask_outputs_dir("s2")
            out2.mkdir()
            (out2 / "result.txt").write_text("bad")
            assert await client.verify("t1", "s2") == (VerifyResult.FAILURE, "bad result in result.txt")

            assert await client.discard_subtasks("t1", ["s2", "never-given"]) == ["s2"]
            assert await client.has_pending_subtasks("t1") is True
            await client.abort_subtask("t1", "s1")
            assert await client.next_subtask("t1", "s4", "node-d") is not None

            assert await client.run_benchmark() == pytest.approx(42.5)
            await client.abort_task("t1")
            assert (task_dir / "aborted").read_text() == "task"
        finally:
            await client.shutdown(timeout=10)
        assert not service.running()
        assert service.exitcode == 0

    asyncio.run(scenario())


def test_many_tasks_are_independent(tmp_path: Path) -> None:
    async def scenario() -> None:
        client, _ = await _start(tmp_path)
        try:
            for task_id, count in (("a", 1), ("b", 3)):
                _prepare_task(tmp_path, task_id)
                await client.create_task(task_id, count, {})
            assert await client.next_subtask("a", "a1", "n") is not None
            assert await client.has_pending_subtasks("a") is False
            assert await client.has_pending_subtasks("b") is True
        finally:
            await client.shutdown()

    asyncio.run(scenario())


def test_create_task_makes_dirs_and_server_runs_on_uvloop(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    async def scenario() -> None:
        client, service = await _start(tmp_path)
        try:
            assert service.running()
            # No dirs prepared: CreateTask still finds the layout it needs.
            await client.create_task("fresh", 1, {})
            task_dir = RequestorDir(tmp_path).task_dir("fresh")
            for name in (constants.TASK_INPUTS_DIR, constants.SUBTASK_INPUTS_DIR,
                         constants.TASK_OUTPUTS_DIR, constants.SUBTASK_OUTPUTS_DIR):
                assert (task_dir / name).is_dir()
        finally:
            await client.shutdown()

    asyncio.run(scenario())
    err = capfd.readouterr().err
    assert "requestor server listening on port" in err
    if importlib.util.find_spec("uvloop") is not None:
        assert "loop uvloop" in err
