"""The server side of the Task API, by its published names.

The work is split by job: `servicers` (RPCs over handlers), `statuses`
(exceptions to gRPC statuses), `appserver` (the serve loop), `grpcserver`
(our grpclib override), `logsetup`, `argv`, `loop` and `entrypoint`.
"""
from __future__ import annotations

from golem_task_api.appserver import (
    SHUTDOWN_GRACE_SECONDS,
    AppServer,
    ProviderAppServer,
    RequestorAppServer,
)
from golem_task_api.argv import parse_argv
from golem_task_api.entrypoint import main as entrypoint
from golem_task_api.logsetup import configure_logging
from golem_task_api.loop import run
from golem_task_api.servicers import ProviderApp, RequestorApp
from golem_task_api.statuses import status_for

__all__ = [
    "SHUTDOWN_GRACE_SECONDS",
    "AppServer",
    "ProviderApp",
    "ProviderAppServer",
    "RequestorApp",
    "RequestorAppServer",
    "configure_logging",
    "entrypoint",
    "parse_argv",
    "run",
    "status_for",
]
