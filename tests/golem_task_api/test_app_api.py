"""The app-facing API in-process: names, Executor, lifecycle, dirs, argv, logging."""
from __future__ import annotations

import asyncio
import logging
import pickle
import threading
import time
from pathlib import Path

import pytest

import golem_task_api as api
from golem_task_api import server
from golem_task_api.dirutils import ProviderTaskDir, RequestorDir, is_safe_path_component
from golem_task_api.threading import Executor

from gta_fakes import FakeRequestorHandler, RecordingLifecycle


@pytest.fixture(autouse=True)
def fresh_executor():
    Executor.initialize()
    yield
    Executor.initialize()


def test_seed_guide_names_resolve() -> None:
    assert api.constants.TASK_INPUTS_DIR == "task_inputs"
    assert api.constants.SUBTASK_INPUTS_DIR == "subtask_inputs"
    assert api.constants.TASK_OUTPUTS_DIR == "task_outputs"
    assert api.constants.SUBTASK_OUTPUTS_DIR == "subtask_outputs"
    assert api.constants.WORK_DIR == "golem/work"
    assert (api.envs.DOCKER_CPU_ENV_ID, api.envs.DOCKER_GPU_ENV_ID) == ("docker_cpu", "docker_gpu")
    assert [v.value for v in api.enums.VerifyResult] == [0, 1, 2, 3]
    assert api.structs.Subtask(params={}, resources=["a"]).resources == ["a"]
    assert api.structs.Infrastructure().min_memory_mib is None
    assert api.threading.Executor is Executor
    assert issubclass(api.NotFoundError, LookupError) and issubclass(api.NotFoundError, api.TaskApiError)


def test_executor_runs_off_loop_and_stops_on_request() -> None:
    loop_thread = threading.get_ident()

    def poll() -> str:
        assert threading.get_ident() != loop_thread
        while not Executor.is_shutting_down():
            time.sleep(0.005)
        return "stopped"

    async def scenario() -> str:
        running = asyncio.create_task(Executor.run(poll))
        await asyncio.sleep(0.05)
        assert not running.done()
        assert await Executor.wait_for_shutdown(0.01) is False  # still busy
        Executor.request_shutdown()
        Executor.request_shutdown()  # idempotent
        result = await running
        assert await Executor.wait_for_shutdown(1) is True
        return result

    assert asyncio.run(scenario()) == "stopped"
    assert Executor.is_shutting_down()
    Executor.initialize()
    assert not Executor.is_shutting_down()


def test_executor_passes_kwargs_and_exceptions() -> None:
    def divide(a: int, b: int = 1) -> float:
        return a / b

    async def scenario() -> None:
        assert await Executor.run(divide, 6, b=3) == 2
        with pytest.raises(ZeroDivisionError):
            await Executor.run(divide, 1, b=0)

    asyncio.run(scenario())


def test_lifecycle_request_shutdown_is_idempotent_and_stops_executor(tmp_path: Path) -> None:
    handler = RecordingLifecycle(tmp_path / "log")

    async def scenario() -> None:
        future = handler.shutdown_future
        assert not future.done()
        handler.request_shutdown()
        handler.request_shutdown()
        assert future.done() and Executor.is_shutting_down()

    asyncio.run(scenario())
    # Still picklable after use: the loop-bound future is not carried over.
    clone = pickle.loads(pickle.dumps(handler))
    assert clone.log_path == handler.log_path and clone._shutdown_future is None


def test_in_process_entrypoint_runs_hooks_in_order(tmp_path: Path) -> None:
    class StopAfterStartup(RecordingLifecycle):
        async def on_after_startup(self) -> None:
            await super().on_after_startup()
            self.request_shutdown()

    async def scenario() -> None:
        await api.entrypoint(
            tmp_path, ["provider", "0"], provider_handler=object(),  # type: ignore[arg-type]
            provider_lifecycle_handler=StopAfterStartup(tmp_path / "log"),
        )

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert (tmp_path / "log").read_text().split() == [
        "before_startup", "after_startup", "before_shutdown", "after_shutdown",
    ]
    assert Executor.is_shutting_down()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["requestor"], ("requestor", 50005)),
        (["provider"], ("provider", 50006)),
        (["requestor", "4000"], ("requestor", 4000)),
        (["provider", 4001], ("provider", 4001)),
    ],
)
def test_parse_argv(argv: list, expected: tuple[str, int]) -> None:
    assert server.parse_argv([str(a) for a in argv]) == expected


@pytest.mark.parametrize("argv", [[], ["node"], ["requestor", "x"], ["requestor", "1", "2"], ["provider", "70000"]])
def test_parse_argv_rejects(argv: list[str]) -> None:
    with pytest.raises(ValueError):
        server.parse_argv(argv)


def test_entrypoint_needs_the_role_handler(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="provider_handler"):
        asyncio.run(api.entrypoint(tmp_path, ["provider", "0"], requestor_handler=FakeRequestorHandler()))


def test_logging_level_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = []
    try:
        monkeypatch.setenv(api.constants.LOG_LEVEL_ENV_VAR, "debug")
        server.configure_logging()
        assert root.level == logging.DEBUG and len(root.handlers) == 1
        # An app that configured logging keeps its setup.
        monkeypatch.setenv(api.constants.LOG_LEVEL_ENV_VAR, "ERROR")
        server.configure_logging()
        assert root.level == logging.DEBUG and len(root.handlers) == 1
    finally:
        root.handlers, root.level = saved_handlers, saved_level


@pytest.mark.parametrize(
    ("name", "safe"),
    [("abc", True), ("a.b-c_1", True), ("", False), (".", False), ("..", False),
     ("a/b", False), ("a\\b", False), ("a\0b", False)],
)
def test_safe_path_component(name: str, safe: bool) -> None:
    assert is_safe_path_component(name) is safe


def test_dir_layouts(tmp_path: Path) -> None:
    task_dir = RequestorDir(tmp_path).task_dir("t")
    task_dir.prepare()
    assert sorted(p.name for p in task_dir.iterdir()) == [
        "subtask_inputs", "subtask_outputs", "task_inputs", "task_outputs"]
    assert task_dir.subtask_outputs_dir("s") == tmp_path / "t" / "subtask_outputs" / "s"
    provider = ProviderTaskDir(tmp_path / "p")
    provider.prepare()
    assert provider.subtask_inputs_dir.is_dir()
    assert provider.subtask_dir("s") == tmp_path / "p" / "s"
