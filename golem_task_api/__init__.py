"""Our own wire-compatible runtime of the Golem Task API.

App code uses it as ``import golem_task_api as api``: ``api.entrypoint``,
``api.RequestorAppHandler``, ``api.structs.Subtask``,
``api.threading.Executor``, ``api.constants.TASK_INPUTS_DIR``, ...
"""
from golem_task_api import constants, dirutils, enums, envs, errors, structs, threading
from golem_task_api.client import ProviderAppClient, RequestorAppClient, TaskApiService
from golem_task_api.enums import VerifyResult
from golem_task_api.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    NotFoundError,
    TaskApiError,
)
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler
from golem_task_api.server import entrypoint, run

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
    "constants",
    "dirutils",
    "entrypoint",
    "envs",
    "enums",
    "errors",
    "run",
    "structs",
    "threading",
]
