"""The app entrypoint, in both published generations.

0.24.7 apps call ``await golem_task_api.entrypoint.main(work_dir, argv, ...)``;
0.24.1 apps (and our seed guide) call ``await golem_task_api.entrypoint(work_dir,
argv, ...)``. This module serves both: its module object is callable and
calling it is calling `main`.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
import types
from pathlib import Path
from typing import Any, Coroutine, Optional, Sequence

from golem_task_api.appserver import AppServer, ProviderAppServer, RequestorAppServer
from golem_task_api.argv import parse_argv
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler
from golem_task_api.logsetup import configure_logging

log = logging.getLogger("golem_task_api.server")


async def main(
    work_dir: Path,
    argv: Sequence[str],
    requestor_handler: Optional[RequestorAppHandler] = None,
    requestor_lifecycle_handler: Optional[AppLifecycleHandler] = None,
    provider_handler: Optional[ProviderAppHandler] = None,
    provider_lifecycle_handler: Optional[AppLifecycleHandler] = None,
) -> None:
    """Serve the role named by argv (`requestor|provider PORT`) until told to shut down."""
    configure_logging()
    role, port = parse_argv(argv)
    work_dir = Path(work_dir)
    server: AppServer
    if role == "requestor":
        if requestor_handler is None:
            raise ValueError("requestor role needs a requestor_handler")
        lifecycle = requestor_lifecycle_handler or AppLifecycleHandler()
        server = RequestorAppServer(work_dir, port, requestor_handler, lifecycle)
    else:
        if provider_handler is None:
            raise ValueError("provider role needs a provider_handler")
        lifecycle = provider_lifecycle_handler or AppLifecycleHandler()
        server = ProviderAppServer(work_dir, port, provider_handler, lifecycle)
    signals = _install_signal_handlers(lifecycle)
    try:
        try:
            await server.start()
            await server.wait_until_shutdown()
        finally:
            await server.stop()
    finally:
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.remove_signal_handler(sig)


def _install_signal_handlers(lifecycle: AppLifecycleHandler) -> list[signal.Signals]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, _on_signal, sig, lifecycle)
        except (NotImplementedError, RuntimeError, ValueError):
            # Not the main thread, or no signal support: Shutdown still works.
            continue
        installed.append(sig)
    return installed


def _on_signal(sig: signal.Signals, lifecycle: AppLifecycleHandler) -> None:
    log.info("received %s, shutting down", sig.name)
    lifecycle.request_shutdown()


class _CallableModule(types.ModuleType):
    """Makes `golem_task_api.entrypoint(...)` (0.24.1) the same call as `.main(...)`."""

    def __call__(
        self,
        work_dir: Path,
        argv: Sequence[str],
        requestor_handler: Optional[RequestorAppHandler] = None,
        requestor_lifecycle_handler: Optional[AppLifecycleHandler] = None,
        provider_handler: Optional[ProviderAppHandler] = None,
        provider_lifecycle_handler: Optional[AppLifecycleHandler] = None,
    ) -> Coroutine[Any, Any, None]:
        return main(
            work_dir,
            argv,
            requestor_handler=requestor_handler,
            requestor_lifecycle_handler=requestor_lifecycle_handler,
            provider_handler=provider_handler,
            provider_lifecycle_handler=provider_lifecycle_handler,
        )


sys.modules[__name__].__class__ = _CallableModule
