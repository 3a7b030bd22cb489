"""Every name of the published 0.24 Python surface exists where apps import it."""
from __future__ import annotations

import importlib
import inspect
import ssl as std_ssl
from pathlib import Path

import pytest

import golem_task_api as api


@pytest.mark.parametrize("name", [
    "client", "constants", "dirutils", "enums", "handlers", "messages", "proto", "structs",
    "threading", "envs", "testutils", "entrypoint", "server", "ssl",
])
def test_submodules_are_attributes(name: str) -> None:
    assert inspect.ismodule(getattr(api, name))
    assert importlib.import_module(f"golem_task_api.{name}") is getattr(api, name)


def test_top_level_names() -> None:
    for name in ("AppLifecycleHandler", "ProviderAppHandler", "RequestorAppHandler",
                 "ProviderAppClient", "RequestorAppClient", "TaskApiService"):
        assert inspect.isclass(getattr(api, name)), name
    assert api.RequestorAppClient is api.client.RequestorAppClient
    assert api.TaskApiService is api.client.TaskApiService


def test_envs_package() -> None:
    from golem_task_api.envs import constants as env_constants
    assert env_constants.DOCKER_CPU_ENV_ID == api.envs.DOCKER_CPU_ENV_ID == "docker_cpu"
    assert env_constants.DOCKER_GPU_ENV_ID == api.envs.DOCKER_GPU_ENV_ID == "docker_gpu"
    inf = api.structs.Infrastructure(min_memory_mib=64.0)
    cpu = api.envs.create_docker_cpu_task("golemfactory/app", "1.2", inf)
    gpu = api.envs.create_docker_gpu_task("golemfactory/app", "1.3", inf)
    assert cpu == api.structs.Task("docker_cpu", {"image": "golemfactory/app", "tag": "1.2"}, inf)
    assert gpu == api.structs.Task("docker_gpu", {"image": "golemfactory/app", "tag": "1.3"}, inf)
    # A fresh Infrastructure per Task, not one shared default.
    assert api.structs.Task("e", {}).inf_requirements is not api.structs.Task("e", {}).inf_requirements


def test_messages_reexport_the_proto_classes() -> None:
    from golem_task_api.proto import golem_task_api_pb2 as pb
    names = [
        "CreateTaskRequest", "CreateTaskReply", "Infrastructure", "NextSubtaskRequest",
        "NextSubtaskReply", "SubtaskReply", "ComputeRequest", "ComputeReply", "VerifyRequest",
        "VerifyReply", "DiscardSubtasksRequest", "DiscardSubtasksReply", "RunBenchmarkRequest",
        "RunBenchmarkReply", "HasPendingSubtasksRequest", "HasPendingSubtasksReply",
        "AbortTaskRequest", "AbortTaskReply", "AbortSubtaskRequest", "AbortSubtaskReply",
        "ShutdownRequest", "ShutdownReply",
    ]
    for name in names:
        assert getattr(api.messages, name) is getattr(pb, name), name


def test_dirutils_are_paths_with_the_layout(tmp_path: Path) -> None:
    from golem_task_api.dirutils import ProviderDir, ProviderTaskDir, RequestorDir, RequestorTaskDir
    req = RequestorDir(tmp_path / "r")
    task = req.task_dir("t")
    assert isinstance(task, RequestorTaskDir) and isinstance(task, Path)
    assert req.subtask_outputs_dir("t", "s") == tmp_path / "r/t/subtask_outputs/s"
    assert task.subtask_outputs_top_dir == tmp_path / "r/t/subtask_outputs"
    assert task.subtask_outputs_dir("s") == task.subtask_outputs_top_dir / "s"
    task.prepare()
    assert sorted(p.name for p in task.iterdir()) == [
        "subtask_inputs", "subtask_outputs", "task_inputs", "task_outputs"]
    prov = ProviderDir(tmp_path / "p")
    ptask = prov.task_dir("t")
    assert isinstance(ptask, ProviderTaskDir)
    assert prov.subtask_dir("t", "s") == ptask.subtask_dir("s") == tmp_path / "p/t/s"
    ptask.prepare()
    assert ptask.subtask_inputs_dir.is_dir()
    # `/` gives a plain Path, not another task dir.
    assert type(ptask / "x") is type(Path())


def test_handlers_are_plain_classes() -> None:
    class OnlyCompute(api.ProviderAppHandler):
        async def compute(self, task_work_dir, subtask_id, subtask_params):  # type: ignore[no-untyped-def]
            return Path("out")

    class NothingAtAll(api.RequestorAppHandler):
        pass

    handler = OnlyCompute()  # no TypeError: not an ABC
    NothingAtAll()
    with pytest.raises(NotImplementedError):
        import asyncio
        asyncio.run(handler.run_benchmark(Path(".")))


def test_ssl_names() -> None:
    assert api.ssl.SERVER_KEY_FILE_NAME == "task_api_server_key.pem"
    assert api.ssl.SERVER_CERT_FILE_NAME == "task_api_server_cert.pem"
    assert api.ssl.CLIENT_KEY_FILE_NAME == "task_api_client_key.pem"
    assert api.ssl.CLIENT_CERT_FILE_NAME == "task_api_client_cert.pem"
    for name in ("create_server_ssl_context", "create_client_ssl_context", "create_ssl_context"):
        assert callable(getattr(api.ssl, name))
    # The stdlib is untouched by our module of the same short name.
    assert std_ssl.SSLContext is not None and api.ssl is not std_ssl


def test_client_names() -> None:
    assert api.client.CONNECTION_TIMEOUT == 15.0
    assert issubclass(api.client.ShutdownException, Exception)
    assert api.client.AppClient.SOFT_SHUTDOWN_TIMEOUT == 5.0
    assert api.RequestorAppClient.DEFAULT_PORT == 50005
    assert api.ProviderAppClient.DEFAULT_PORT == 50006
    assert issubclass(api.RequestorAppClient, api.client.AppClient)
    assert inspect.iscoroutinefunction(api.TaskApiService.open_channel)
    for rpc in ("create_task", "next_subtask", "verify", "discard_subtasks",
                "has_pending_subtasks", "run_benchmark", "abort_task", "abort_subtask", "shutdown"):
        assert inspect.iscoroutinefunction(getattr(api.RequestorAppClient, rpc)), rpc
    for rpc in ("compute", "run_benchmark", "shutdown"):
        assert inspect.iscoroutinefunction(getattr(api.ProviderAppClient, rpc)), rpc


def test_server_names() -> None:
    from golem_task_api import server
    for name in ("AppServer", "RequestorAppServer", "ProviderAppServer", "RequestorApp", "ProviderApp"):
        assert inspect.isclass(getattr(server, name)), name
    for name in ("start", "stop", "wait_until_shutdown"):
        assert inspect.iscoroutinefunction(getattr(server.AppServer, name)), name


def test_testutils_package() -> None:
    from golem_task_api.testutils import inlinetaskapiservice, tasklifecycleutil
    assert api.testutils.InlineTaskApiService is inlinetaskapiservice.InlineTaskApiService
    assert api.testutils.TaskLifecycleUtil is tasklifecycleutil.TaskLifecycleUtil
    # Production services live outside testutils; testutils re-exports them.
    from golem_task_api import services
    assert api.testutils.SubprocessTaskApiService is services.SubprocessTaskApiService
    assert api.testutils.find_free_port is services.find_free_port
