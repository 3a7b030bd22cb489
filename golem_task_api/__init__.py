"""Our own wire-compatible runtime of the Golem Task API.

App code uses it as ``import golem_task_api as api``: ``api.entrypoint``
(awaitable itself, as in 0.24.1, or through ``api.entrypoint.main``, as in
0.24.7), ``api.RequestorAppHandler``, ``api.structs.Subtask``,
``api.threading.Executor``, ``api.constants.TASK_INPUTS_DIR``, ...
"""
from golem_task_api import (
    client,
    constants,
    dirutils,
    entrypoint,
    enums,
    envs,
    errors,
    handlers,
    messages,
    proto,
    server,
    ssl,
    structs,
    testutils,
    threading,
)
from golem_task_api.client import ProviderAppClient, RequestorAppClient, TaskApiService
from golem_task_api.enums import VerifyResult
from golem_task_api.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    NotFoundError,
    TaskApiError,
)
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler
from golem_task_api.loop import run

__all__ = [
    "AlreadyExistsError",
    "AppLifecycleHandler",
    "FailedPreconditionError",
    "NotFoundError",
    "ProviderAppClient",
    "ProviderAppHandler",
    "RequestorAppClient",
    "RequestorAppHandler",
    "TaskApiError",
    "TaskApiService",
    "VerifyResult",
    "client",
    "constants",
    "dirutils",
    "entrypoint",
    "enums",
    "envs",
    "errors",
    "handlers",
    "messages",
    "proto",
    "run",
    "server",
    "ssl",
    "structs",
    "testutils",
    "threading",
]


def __getattr__(name: str) -> object:
    # apputils pulls in peewee: imported on first use, not by every app.
    if name == "apputils":
        import importlib

        return importlib.import_module("golem_task_api.apputils")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
