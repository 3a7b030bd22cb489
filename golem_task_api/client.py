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
import ssl
import time
from pathlib import Path
from typing import Any, Optional, Self

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
HEALTH_TIMEOUT = 15.0
DEFAULT_SHUTDOWN_TIMEOUT = 10.0

# What a call to a server that is not (yet, or any more) listening raises.
_CONNECTION_ERRORS = (
    OSError, StreamTerminatedError, ProtocolError, asyncio.TimeoutError, ssl.SSLError,
)


class ServiceNotReadyError(RuntimeError):
    """The service exited or never answered SERVING to the health check."""


class TaskApiService(abc.ABC):
    """Runs an app server somewhere (process, container, ...)."""

    @abc.abstractmethod
    async def start(self, command: list[str], port: int) -> tuple[str, int]:
        """Start the app with argv `command` (e.g. ["requestor", "50005"]); return (host, port) to dial."""

    @abc.abstractmethod
    def running(self) -> bool:
        """True while the server process is alive."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Force the server to stop; idempotent."""

    @abc.abstractmethod
    async def wait_until_shutdown_complete(self) -> None:
        """Return once the server process has ended."""


async def wait_until_serving(
    channel: Channel,
    service: TaskApiService,
    timeout: float = HEALTH_TIMEOUT,
    poll_interval: float = HEALTH_POLL_INTERVAL,
) -> None:
    """Poll grpc.health.v1.Health/Check("") until SERVING; raise ServiceNotReadyError otherwise."""
    stub = HealthStub(channel)
    deadline = time.monotonic() + timeout
    while True:
        if not service.running():
            raise ServiceNotReadyError("the service exited before it answered the health check")
        try:
            reply = await stub.Check(
                HealthCheckRequest(service=""), timeout=max(poll_interval, 1.0)
            )
            if reply.status == HealthCheckResponse.SERVING:
                return
        except (GRPCError, *_CONNECTION_ERRORS):
            # A fresh connection is tried next time round.
            channel.close()
        if time.monotonic() >= deadline:
            raise ServiceNotReadyError(f"no SERVING health check answer within {timeout} s")
        await asyncio.sleep(poll_interval)


class _AppClient:
    _ROLE = ""
    _DEFAULT_PORT = 0
    _STUB: Any = None

    def __init__(self, service: TaskApiService, channel: Channel) -> None:
        self._service = service
        self._channel = channel
        self._shut_down = False
        self._stub = self._STUB(channel)

    @classmethod
    async def create(
        cls,
        service: TaskApiService,
        port: Optional[int] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        health_timeout: float = HEALTH_TIMEOUT,
    ) -> Self:
        """Start the app server through service (on the role's default port unless
        given) and wait until its health check answers SERVING."""
        if port is None:
            port = cls._DEFAULT_PORT
        host, port = await service.start([cls._ROLE, str(port)], port)
        channel = Channel(host, port, ssl=ssl_context)
        try:
            await wait_until_serving(channel, service, health_timeout)
        except BaseException:
            channel.close()
            await service.stop()
            raise
        return cls(service, channel)

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
                    await self._stub.Shutdown(pb.ShutdownRequest(), timeout=timeout)
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
                self._channel.close()

    async def run_benchmark(self, timeout: Optional[float] = None) -> float:
        """RunBenchmark: the score."""
        reply = await self._stub.RunBenchmark(pb.RunBenchmarkRequest(), timeout=timeout)
        return float(reply.score)


class RequestorAppClient(_AppClient):
    """Calls a requestor app server; one coroutine per RPC."""

    _ROLE = "requestor"
    _DEFAULT_PORT = constants.DEFAULT_REQUESTOR_PORT
    _STUB = RequestorAppStub

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
    ) -> tuple[VerifyResult, Optional[str]]:
        """Verify: the result and the reason (None when the app gave none)."""
        reply = await self._stub.Verify(
            pb.VerifyRequest(task_id=task_id, subtask_id=subtask_id), timeout=timeout
        )
        return VerifyResult(reply.result), reply.reason or None

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



class ProviderAppClient(_AppClient):
    """Calls a provider app server: one Compute or RunBenchmark per server."""

    _ROLE = "provider"
    _DEFAULT_PORT = constants.DEFAULT_PROVIDER_PORT
    _STUB = ProviderAppStub

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

