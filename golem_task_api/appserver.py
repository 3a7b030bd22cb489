"""The serve loop: an app's servicer plus the health service on one port.

`AppServer` starts listening, waits for the lifecycle's shutdown request and
stops gracefully: health turns NOT_SERVING, the lifecycle's hooks run,
running calls get `SHUTDOWN_GRACE_SECONDS` to finish, then every
connection is closed.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from pathlib import Path
from typing import Any, Optional

from grpclib.health.check import ServiceStatus
from grpclib.health.service import Health

from golem_task_api.grpcserver import ConnectionClosingServer
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler
from golem_task_api.servicers import ProviderApp, RequestorApp
from golem_task_api.ssl import create_server_ssl_context
from golem_task_api.statuses import InFlight
from golem_task_api.threading import Executor

log = logging.getLogger("golem_task_api.server")

# How long in-flight calls may take to finish once shutdown was requested
# before the server cancels them.
SHUTDOWN_GRACE_SECONDS = 5.0

# Where the server listens: all interfaces (the node dials a container's address).
LISTEN_HOST: Optional[str] = None


class AppServer:
    """Serves golem_app (a servicer) and the health service on port until shut down."""

    def __init__(
        self,
        golem_app: Any,
        port: int,
        lifecycle: AppLifecycleHandler,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self._golem_app = golem_app
        self._port = port
        self._lifecycle = lifecycle
        self._ssl_context = ssl_context
        # Answers for "" and for the app service's name; NOT_SERVING once a
        # shutdown starts so nobody sends new work while running calls drain.
        self._serving = ServiceStatus()
        self._server = ConnectionClosingServer(
            [golem_app, Health({golem_app: [self._serving]})]
        )
        self._started = False
        self._stopped = False
        # For log lines: "requestor server listening on port ...".
        self._name = f"{getattr(golem_app, 'ROLE', type(golem_app).__name__)} server"

    @property
    def port(self) -> int:
        """The port given (0 lets the kernel choose; see `bound_port`)."""
        return self._port

    @property
    def bound_port(self) -> int:
        """The IPv4 port actually listened on, once started (port 0 binds one per family)."""
        sockets = self._server.sockets()
        ipv4 = [s for s in sockets if s.family == socket.AF_INET] or sockets
        return int(ipv4[0].getsockname()[1]) if ipv4 else self._port

    @property
    def open_connections(self) -> int:
        """How many client connections are open now."""
        return self._server.open_connections

    async def start(self) -> None:
        """Run on_before_startup, listen, run on_after_startup."""
        Executor.initialize()
        # Created here, on the serving loop, so other threads can wake it.
        _ = self._lifecycle.shutdown_future
        await self._lifecycle.on_before_startup()
        self._serving.set(True)
        await self._server.start(LISTEN_HOST, self._port, ssl=self._ssl_context)
        self._started = True
        log.info(
            "%s listening on port %d (%s, loop %s)",
            self._name, self.bound_port,
            "mutual TLS" if self._ssl_context else "plaintext",
            type(asyncio.get_running_loop()).__module__,
        )
        await self._lifecycle.on_after_startup()

    async def wait_until_shutdown(self) -> None:
        """Return once a shutdown was requested (RPC, signal or request_shutdown)."""
        await self._lifecycle.shutdown_future

    async def stop(self) -> None:
        """Stop gracefully; idempotent. Also right after a failed start."""
        if self._stopped:
            return
        self._stopped = True
        self._serving.set(False)
        try:
            if self._started:
                log.info("%s shutting down", self._name)
                # Before waiting for running calls: the hook may be what stops
                # them (e.g. an app's compute pool).
                await self._lifecycle.on_before_shutdown()
                in_flight: Optional[InFlight] = getattr(self._golem_app, "in_flight", None)
                if in_flight is not None and not await in_flight.wait_idle(
                    SHUTDOWN_GRACE_SECONDS
                ):
                    log.warning(
                        "calls still running after %.1f s; cancelling them",
                        SHUTDOWN_GRACE_SECONDS,
                    )
        finally:
            # Also reached on a hook failure or cancellation: stop computations too.
            Executor.request_shutdown()
            if self._started:
                self._server.close()
                await self._server.wait_closed()
                await self._server.close_connections()
        await self._lifecycle.on_after_shutdown()
        log.info("%s stopped", self._name)


class RequestorAppServer(AppServer):
    """An AppServer of RequestorApp, with TLS from the work dir's files."""

    def __init__(
        self,
        work_dir: Path,
        port: int,
        handler: RequestorAppHandler,
        lifecycle: AppLifecycleHandler,
    ) -> None:
        super().__init__(
            RequestorApp(Path(work_dir), handler, lifecycle),
            port,
            lifecycle,
            create_server_ssl_context(Path(work_dir)),
        )


class ProviderAppServer(AppServer):
    """An AppServer of ProviderApp, with TLS from the work dir's files."""

    def __init__(
        self,
        work_dir: Path,
        port: int,
        handler: ProviderAppHandler,
        lifecycle: AppLifecycleHandler,
    ) -> None:
        super().__init__(
            ProviderApp(Path(work_dir), handler, lifecycle),
            port,
            lifecycle,
            create_server_ssl_context(Path(work_dir)),
        )
