"""The node side: start an app's server somewhere and call it.

`TaskApiService` says where and how the server process runs; the clients
wait for the health check to answer SERVING before the first call, and
`shutdown(timeout)` asks politely, then force-stops the service.
"""
from __future__ import annotations

import abc
import asyncio
import json
import logging
import socket
import ssl
import time
from pathlib import Path
from typing import Any, Optional, Self, Sequence, Union

from grpclib.client import Channel
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from golem_task_api import constants, structs
from golem_task_api.enums import VerifyResult
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto.golem_task_api_grpc import ProviderAppStub, RequestorAppStub

log = logging.getLogger("golem_task_api.client")

HEALTH_POLL_INTERVAL = 0.1
# The first pause between health polls; it doubles up to HEALTH_POLL_INTERVAL.
FIRST_HEALTH_POLL_PAUSE = 0.005
# TCP probes of a server that does not listen yet: cheap, so frequent.
FIRST_ACCEPT_PROBE_PAUSE = 0.001
ACCEPT_PROBE_INTERVAL = 0.01
# A connect that neither succeeds nor fails this fast (a host dropping packets) is a miss.
ACCEPT_PROBE_TIMEOUT = 0.5
# How long a client waits for a freshly started service to answer SERVING.
CONNECTION_TIMEOUT = 15.0
HEALTH_TIMEOUT = CONNECTION_TIMEOUT
DEFAULT_SHUTDOWN_TIMEOUT = 5.0

# What a call to a server that is not (yet, or any more) listening raises.
_CONNECTION_ERRORS = (
    OSError, StreamTerminatedError, ProtocolError, asyncio.TimeoutError, ssl.SSLError,
)


class ServiceNotReadyError(RuntimeError):
    """The service exited or never answered SERVING to the health check."""


class ShutdownException(Exception):
    """The app server did not shut down as asked."""


def command_argv(command: Union[str, Sequence[str]]) -> list[str]:
    """The argv of a service command: "requestor 50005" split on whitespace (a list passes as is)."""
    if isinstance(command, str):
        return command.split()
    return [str(part) for part in command]


class TaskApiService(abc.ABC):
    """Runs an app server somewhere (process, container, ...)."""

    @abc.abstractmethod
    async def start(self, command: str, port: int) -> tuple[str, int]:
        """Start the app with command (e.g. "requestor 50005"); return (host, port) to dial.

        Services of this package also accept the command as a list of words.
        """

    @abc.abstractmethod
    def running(self) -> bool:
        """True while the server process is alive."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Force the server to stop; idempotent."""

    @abc.abstractmethod
    async def wait_until_shutdown_complete(self) -> None:
        """Return once the server process has ended."""

    async def open_channel(
        self,
        command: str,
        port: int,
        ssl_context: Optional[ssl.SSLContext] = None,
        health_timeout: float = CONNECTION_TIMEOUT,
    ) -> Channel:
        """Start the service, wait until its health check answers SERVING, return the channel.

        The service is stopped again when it never gets there.
        """
        host, port = await self.start(command, port)
        deadline = time.monotonic() + health_timeout
        channel = Channel(host, port, ssl=ssl_context)
        try:
            await wait_until_accepting(host, port, self, health_timeout)
            await wait_until_serving(channel, self, max(0.0, deadline - time.monotonic()))
        except BaseException:
            channel.close()
            await self.stop()
            raise
        return channel


async def wait_until_accepting(
    host: str, port: int, service: TaskApiService, timeout: float = HEALTH_TIMEOUT,
) -> None:
    """Wait until ``host:port`` accepts a TCP connection; ServiceNotReadyError otherwise.

    A refused connect costs microseconds where a refused health call costs a
    gRPC connection set up in Python, so this probes often (every few ms) and
    the health check is called once the server listens: a server is dialled
    as soon as it is ready, and one that is slow to start costs little."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    pause = FIRST_ACCEPT_PROBE_PAUSE
    last = "no answer"
    while True:
        if not service.running():
            raise ServiceNotReadyError("the service exited before it answered the health check")
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            for family, kind, proto, _, address in infos:
                with socket.socket(family, kind, proto) as sock:
                    sock.setblocking(False)
                    try:
                        await asyncio.wait_for(loop.sock_connect(sock, address), ACCEPT_PROBE_TIMEOUT)
                    except (OSError, asyncio.TimeoutError) as exc:
                        last = f"{type(exc).__name__}: {exc}"
                        continue
                    # A connect to a local port nobody listens on can, rarely,
                    # be given that port as its own and connect to itself.
                    if sock.getsockname() != sock.getpeername():
                        return
                    last = "a connection to itself"
        except OSError as exc:  # the name does not resolve (yet)
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise ServiceNotReadyError(
                f"no SERVING health check answer within {timeout} s (last: {last[:200]})")
        await asyncio.sleep(pause)
        pause = min(2 * pause, ACCEPT_PROBE_INTERVAL)


async def wait_until_serving(
    channel: Channel,
    service: TaskApiService,
    timeout: float = HEALTH_TIMEOUT,
    poll_interval: float = HEALTH_POLL_INTERVAL,
) -> None:
    """Poll grpc.health.v1.Health/Check("") until SERVING; raise ServiceNotReadyError otherwise.

    The pause between polls starts short and doubles up to ``poll_interval``:
    a server forked from a process that has imported the app serves within
    a few milliseconds, and a fixed pause would be most of its start."""
    stub = HealthStub(channel)
    deadline = time.monotonic() + timeout
    pause = min(FIRST_HEALTH_POLL_PAUSE, poll_interval)
    last = "no answer"
    while True:
        if not service.running():
            raise ServiceNotReadyError("the service exited before it answered the health check")
        try:
            reply = await stub.Check(
                HealthCheckRequest(service=""), timeout=max(poll_interval, 1.0)
            )
            if reply.status == HealthCheckResponse.SERVING:
                return
            last = f"status {HealthCheckResponse.ServingStatus.Name(reply.status)}"
        except (GRPCError, *_CONNECTION_ERRORS) as exc:
            last = f"{type(exc).__name__}: {exc}"
            # A fresh connection is tried next time round.
            channel.close()
        if time.monotonic() >= deadline:
            raise ServiceNotReadyError(
                f"no SERVING health check answer within {timeout} s (last: {last[:200]})")
        await asyncio.sleep(pause)
        pause = min(2 * pause, poll_interval)


class AppClient(abc.ABC):
    """What both app clients share: the service they started and a graceful shutdown."""

    SOFT_SHUTDOWN_TIMEOUT = DEFAULT_SHUTDOWN_TIMEOUT

    def __init__(self, service: TaskApiService) -> None:
        self._service = service
        self._channel: Optional[Channel] = None
        self._shut_down = False

    async def _shutdown_call(self, timeout: float) -> None:
        raise NotImplementedError

    @property
    def service(self) -> TaskApiService:
        """The service this client started."""
        return self._service

    async def shutdown(self, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        """Ask the server to stop, wait up to timeout for it to end, then force-stop it; idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        try:
            if self._service.running():
                try:
                    await self._shutdown_call(timeout)
                except (GRPCError, *_CONNECTION_ERRORS) as exc:
                    # Already stopping (a provider after its one request) or gone.
                    log.debug("Shutdown call failed: %r", exc)
                try:
                    await asyncio.wait_for(self._service.wait_until_shutdown_complete(), timeout)
                except asyncio.TimeoutError:
                    log.warning("service still running %.1f s after Shutdown; stopping it", timeout)
        finally:
            # Whatever went wrong above (or a cancellation), the server must not outlive us.
            try:
                await self._service.stop()
            finally:
                if self._channel is not None:
                    self._channel.close()


class _StubClient(AppClient):
    _ROLE = ""
    DEFAULT_PORT = 0

    def __init__(self, service: TaskApiService, app_stub: Any) -> None:
        super().__init__(service)
        self._stub = app_stub
        # Generated stubs keep the channel on each method object, not on themselves.
        self._channel = getattr(getattr(app_stub, "Shutdown", None), "channel", None)

    @classmethod
    async def create(
        cls,
        service: TaskApiService,
        port: Optional[int] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        health_timeout: float = CONNECTION_TIMEOUT,
    ) -> Self:
        """Start the app server through service (on the role's DEFAULT_PORT unless
        given), wait until its health check answers SERVING, and connect."""
        if port is None:
            port = cls.DEFAULT_PORT
        channel = await service.open_channel(
            f"{cls._ROLE} {port}", port, ssl_context, health_timeout
        )
        return cls(service, cls._stub_class()(channel))

    @staticmethod
    def _stub_class() -> Any:
        raise NotImplementedError

    async def _shutdown_call(self, timeout: float) -> None:
        await self._stub.Shutdown(pb.ShutdownRequest(), timeout=timeout)

    async def run_benchmark(self, timeout: Optional[float] = None) -> float:
        """RunBenchmark: the score."""
        reply = await self._stub.RunBenchmark(pb.RunBenchmarkRequest(), timeout=timeout)
        return float(reply.score)


class RequestorAppClient(_StubClient):
    """Calls a requestor app server; one coroutine per RPC."""

    _ROLE = "requestor"
    DEFAULT_PORT = constants.DEFAULT_REQUESTOR_PORT

    @staticmethod
    def _stub_class() -> Any:
        return RequestorAppStub

    async def create_task(
        self,
        task_id: str,
        max_subtasks_count: int,
        task_params: dict[str, Any],
        timeout: Optional[float] = None,
    ) -> structs.Task:
        """CreateTask: returns the environment, prerequisites and requirements."""
        reply = await self._stub.CreateTask(
            pb.CreateTaskRequest(
                task_id=task_id,
                max_subtasks_count=max_subtasks_count,
                task_params_json=json.dumps(task_params),
            ),
            timeout=timeout,
        )
        min_memory = (
            reply.inf_requirements.min_memory_mib if reply.HasField("inf_requirements") else None
        )
        return structs.Task(
            env_id=reply.env_id,
            prerequisites=json.loads(reply.prerequisites_json) if reply.prerequisites_json else {},
            inf_requirements=structs.Infrastructure(min_memory_mib=min_memory),
        )

    async def next_subtask(
        self,
        task_id: str,
        subtask_id: str,
        opaque_node_id: str,
        timeout: Optional[float] = None,
    ) -> Optional[structs.Subtask]:
        """NextSubtask: the subtask for that node, or None when the app gives it none."""
        reply = await self._stub.NextSubtask(
            pb.NextSubtaskRequest(
                task_id=task_id, subtask_id=subtask_id, opaque_node_id=opaque_node_id
            ),
            timeout=timeout,
        )
        if not reply.HasField("subtask"):
            return None
        return structs.Subtask(
            params=json.loads(reply.subtask.subtask_params_json),
            resources=list(reply.subtask.resources),
        )

    async def verify(
        self, task_id: str, subtask_id: str, timeout: Optional[float] = None
    ) -> tuple[VerifyResult, str]:
        """Verify: the result and the reason ('' when the app gave none)."""
        reply = await self._stub.Verify(
            pb.VerifyRequest(task_id=task_id, subtask_id=subtask_id), timeout=timeout
        )
        return VerifyResult(reply.result), reply.reason

    async def discard_subtasks(
        self, task_id: str, subtask_ids: list[str], timeout: Optional[float] = None
    ) -> list[str]:
        """DiscardSubtasks: the ids actually discarded."""
        reply = await self._stub.DiscardSubtasks(
            pb.DiscardSubtasksRequest(task_id=task_id, subtask_ids=subtask_ids), timeout=timeout
        )
        return list(reply.discarded_subtask_ids)

    async def has_pending_subtasks(self, task_id: str, timeout: Optional[float] = None) -> bool:
        """HasPendingSubtasks."""
        reply = await self._stub.HasPendingSubtasks(
            pb.HasPendingSubtasksRequest(task_id=task_id), timeout=timeout
        )
        return reply.has_pending_subtasks

    async def abort_task(self, task_id: str, timeout: Optional[float] = None) -> None:
        """AbortTask."""
        await self._stub.AbortTask(pb.AbortTaskRequest(task_id=task_id), timeout=timeout)

    async def abort_subtask(
        self, task_id: str, subtask_id: str, timeout: Optional[float] = None
    ) -> None:
        """AbortSubtask."""
        await self._stub.AbortSubtask(
            pb.AbortSubtaskRequest(task_id=task_id, subtask_id=subtask_id), timeout=timeout
        )


class ProviderAppClient(_StubClient):
    """Calls a provider app server: one Compute or RunBenchmark per server."""

    _ROLE = "provider"
    DEFAULT_PORT = constants.DEFAULT_PROVIDER_PORT

    @staticmethod
    def _stub_class() -> Any:
        return ProviderAppStub

    async def compute(
        self,
        task_id: str,
        subtask_id: str,
        subtask_params: dict[str, Any],
        timeout: Optional[float] = None,
    ) -> Path:
        """Compute: the result file's path relative to the provider's work dir."""
        reply = await self._stub.Compute(
            pb.ComputeRequest(
                task_id=task_id,
                subtask_id=subtask_id,
                subtask_params_json=json.dumps(subtask_params),
            ),
            timeout=timeout,
        )
        return Path(reply.output_filepath)

