"""Tiny handlers the golem_task_api tests serve; picklable, importable in spawned children.

They keep their state in files under the task dir so every answer is a
function of what the test did, whichever process serves it.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any, Optional

import golem_task_api as api
from golem_task_api import structs
from golem_task_api.enums import VerifyResult
from golem_task_api.errors import NotFoundError
from golem_task_api.threading import Executor

GOOD_RESULT = "good"
STARTED_MARKER = "blocking-call-started"


async def wait_for_file(path: Path, timeout: float = 10.0) -> None:
    """Wait until a child process has written path."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not path.exists():
        assert loop.time() < deadline, f"{path} did not appear"
        await asyncio.sleep(0.02)


def _block_until_shutdown(marker: Path) -> None:
    marker.write_text("started")
    while not Executor.is_shutting_down():
        time.sleep(0.01)
    raise RuntimeError("interrupted by shutdown")


class FakeRequestorHandler(api.RequestorAppHandler):
    """Hands out max_subtasks_count subtasks; a result file reading 'good' verifies."""

    async def create_task(
        self, task_work_dir: Path, max_subtasks_count: int, task_params: dict[str, Any]
    ) -> structs.Task:
        if max_subtasks_count < 1:
            raise ValueError("max_subtasks_count must be positive")
        state = {"max": max_subtasks_count, "given": [], "params": task_params}
        (task_work_dir / "state.json").write_text(json.dumps(state))
        for resource in (task_work_dir / api.constants.TASK_INPUTS_DIR).iterdir():
            shutil.copy2(resource, task_work_dir / api.constants.SUBTASK_INPUTS_DIR / resource.name)
        return structs.Task(
            env_id=api.envs.DOCKER_CPU_ENV_ID,
            prerequisites={"image": "fake/app", "tag": str(task_params.get("tag", "1.0"))},
            inf_requirements=structs.Infrastructure(min_memory_mib=256.0),
        )

    def _state(self, task_work_dir: Path) -> dict[str, Any]:
        return json.loads((task_work_dir / "state.json").read_text())

    def _save(self, task_work_dir: Path, state: dict[str, Any]) -> None:
        (task_work_dir / "state.json").write_text(json.dumps(state))

    async def next_subtask(
        self, task_work_dir: Path, subtask_id: str, opaque_node_id: str
    ) -> Optional[structs.Subtask]:
        if opaque_node_id == "raise-value":
            raise ValueError("node id rejected")
        if opaque_node_id == "raise-missing":
            raise NotFoundError("no such subtask")
        if opaque_node_id == "raise-runtime":
            raise RuntimeError("handler crashed")
        if opaque_node_id == "block":
            await Executor.run(_block_until_shutdown, task_work_dir / STARTED_MARKER)
        state = self._state(task_work_dir)
        if opaque_node_id == "banned" or len(state["given"]) >= state["max"]:
            return None
        state["given"].append(subtask_id)
        self._save(task_work_dir, state)
        resources = sorted(p.name for p in (task_work_dir / api.constants.SUBTASK_INPUTS_DIR).iterdir())
        return structs.Subtask(
            params={"index": len(state["given"]) - 1, "node": opaque_node_id}, resources=resources
        )

    async def verify(
        self, task_work_dir: Path, subtask_id: str
    ) -> tuple[VerifyResult, Optional[str]]:
        if subtask_id not in self._state(task_work_dir)["given"]:
            raise NotFoundError(f"unknown subtask {subtask_id}")
        outputs = task_work_dir / api.constants.SUBTASK_OUTPUTS_DIR / subtask_id
        files = sorted(outputs.iterdir()) if outputs.is_dir() else []
        if not files:
            return VerifyResult.AWAITING_DATA, None
        if files[0].read_text().startswith(GOOD_RESULT):
            shutil.copy2(files[0], task_work_dir / api.constants.TASK_OUTPUTS_DIR / f"{subtask_id}.txt")
            return VerifyResult.SUCCESS, None
        return VerifyResult.FAILURE, f"bad result in {files[0].name}"

    async def discard_subtasks(self, task_work_dir: Path, subtask_ids: list[str]) -> list[str]:
        state = self._state(task_work_dir)
        discarded = [i for i in subtask_ids if i in state["given"]]
        state["given"] = [i for i in state["given"] if i not in discarded]
        self._save(task_work_dir, state)
        return discarded

    async def has_pending_subtasks(self, task_work_dir: Path) -> bool:
        state = self._state(task_work_dir)
        return len(state["given"]) < state["max"]

    async def run_benchmark(self, work_dir: Path) -> float:
        return 42.5

    async def abort_task(self, task_work_dir: Path) -> None:
        (task_work_dir / "aborted").write_text("task")

    async def abort_subtask(self, task_work_dir: Path, subtask_id: str) -> None:
        state = self._state(task_work_dir)
        state["given"].remove(subtask_id)  # ValueError for an unknown id
        self._save(task_work_dir, state)


class BlockingVerifyHandler(FakeRequestorHandler):
    """verify blocks in Executor.run until the server shuts down."""

    async def verify(
        self, task_work_dir: Path, subtask_id: str
    ) -> tuple[VerifyResult, Optional[str]]:
        await Executor.run(_block_until_shutdown, task_work_dir / STARTED_MARKER)
        return VerifyResult.INCONCLUSIVE, "unreachable"


class FakeProviderHandler(api.ProviderAppHandler):
    """Writes '<good|bad> <index> <resources>' to {subtask_id}/result.txt."""

    async def compute(
        self, task_work_dir: Path, subtask_id: str, subtask_params: dict[str, Any]
    ) -> Path:
        if subtask_params.get("block"):
            await Executor.run(_block_until_shutdown, task_work_dir / STARTED_MARKER)
        inputs = task_work_dir / api.constants.SUBTASK_INPUTS_DIR
        contents = "".join(p.read_text() for p in sorted(inputs.iterdir()))
        verdict = "bad" if subtask_params.get("node") == "cheater" else GOOD_RESULT
        out_dir = task_work_dir / subtask_id
        out_dir.mkdir()
        (out_dir / "result.txt").write_text(f"{verdict} {subtask_params.get('index')} {contents}")
        return Path(subtask_id) / "result.txt"

    async def run_benchmark(self, work_dir: Path) -> float:
        return 7.25


class RecordingLifecycle(api.AppLifecycleHandler):
    """Appends each hook's name to a log file."""

    def __init__(self, log_path: Path) -> None:
        super().__init__()
        self.log_path = log_path

    def _record(self, name: str) -> None:
        with self.log_path.open("a") as f:
            f.write(name + "\n")

    async def on_before_startup(self) -> None:
        self._record("before_startup")

    async def on_after_startup(self) -> None:
        self._record("after_startup")

    async def on_before_shutdown(self) -> None:
        self._record("before_shutdown")

    async def on_after_shutdown(self) -> None:
        self._record("after_shutdown")


RELEASE_MARKER = "release"


class StubbornVerifyHandler(FakeRequestorHandler):
    """verify ignores the shutdown flag and waits for the test to write `release`."""

    async def verify(
        self, task_work_dir: Path, subtask_id: str
    ) -> tuple[VerifyResult, Optional[str]]:
        (task_work_dir / STARTED_MARKER).write_text("started")
        await wait_for_file(task_work_dir / RELEASE_MARKER, timeout=20)
        return VerifyResult.INCONCLUSIVE, "released"
