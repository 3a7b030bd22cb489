"""The requestor and provider gRPC servers and the app `entrypoint`.

Handler exceptions are mapped to gRPC statuses here, once, at the boundary
(see `golem_task_api.errors`); the server logs the failure and keeps serving.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, Coroutine, Optional, Sequence, TypeVar

from grpclib.const import Status
from grpclib.health.check import ServiceStatus
from grpclib.health.service import Health
from grpclib.server import Server, Stream

from golem_task_api import constants, tls
from golem_task_api.dirutils import RequestorDir, RequestorTaskDir, is_safe_path_component
from golem_task_api.enums import VerifyResult
from golem_task_api.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    NotFoundError,
)
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto.golem_task_api_grpc import ProviderAppBase, RequestorAppBase
from golem_task_api.threading import Executor

log = logging.getLogger("golem_task_api.server")

# How long in-flight calls may take to finish once shutdown was requested
# before the server cancels them.
SHUTDOWN_GRACE_SECONDS = 5.0

_T = TypeVar("_T")


def status_for(exc: BaseException) -> Status:
    """The gRPC status a handler exception is reported with."""
    if isinstance(exc, NotFoundError):
        return Status.NOT_FOUND
    if isinstance(exc, AlreadyExistsError):
        return Status.ALREADY_EXISTS
    if isinstance(exc, FailedPreconditionError):
        return Status.FAILED_PRECONDITION
    if isinstance(exc, ValueError):
        return Status.INVALID_ARGUMENT
    return Status.INTERNAL


def _check_component(value: str, what: str) -> str:
    if not is_safe_path_component(value):
        raise ValueError(f"invalid {what}: {value!r}")
    return value


def _parse_json_object(text: str, what: str) -> dict[str, Any]:
    value = json.loads(text)  # JSONDecodeError is a ValueError -> INVALID_ARGUMENT
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    return value


class _InFlight:
    """Counts running calls so shutdown can let them finish first."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self._count += 1
        self._idle.clear()

    def leave(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False


async def _serve_unary(
    stream: Stream[Any, Any],
    method: str,
    in_flight: _InFlight,
    func: Callable[[Any], Awaitable[Any]],
) -> None:
    """Receive one request, run func, send its reply or the mapped error status."""
    in_flight.enter()
    try:
        request = await stream.recv_message()
        try:
            reply = await func(request)
        except Exception as exc:  # the one place handler errors become statuses
            status = status_for(exc)
            message = str(exc) or type(exc).__name__
            if status is Status.INTERNAL:
                log.exception("%s failed", method)
            else:
                log.warning("%s failed: %s: %s", method, status.name, message)
            await stream.send_trailing_metadata(status=status, status_message=message)
            return
        await stream.send_message(reply)
        # Sent here, not by grpclib after return, so "call done" means "reply written".
        await stream.send_trailing_metadata()
    finally:
        in_flight.leave()


class RequestorServer(RequestorAppBase):
    """Serves RequestorApp over the app's RequestorAppHandler."""

    def __init__(
        self,
        work_dir: Path,
        handler: RequestorAppHandler,
        lifecycle: AppLifecycleHandler,
    ) -> None:
        self._work_dir = RequestorDir(work_dir)
        self._handler = handler
        self._lifecycle = lifecycle
        self.in_flight = _InFlight()

    def _task_dir(self, task_id: str) -> RequestorTaskDir:
        task_dir = self._work_dir.task_dir(_check_component(task_id, "task_id"))
        if not task_dir.is_dir():
            raise NotFoundError(f"task {task_id!r} not found")
        return task_dir

    async def CreateTask(self, stream: Stream[Any, Any]) -> None:
        await _serve_unary(stream, "CreateTask", self.in_flight, self._create_task)

    async def _create_task(self, request: pb.CreateTaskRequest) -> pb.CreateTaskReply:
        task_dir = self._work_dir.task_dir(_check_component(request.task_id, "task_id"))
        params = _parse_json_object(request.task_params_json, "task_params_json")
        # The node normally creates these; creating them here is harmless.
        task_dir.prepare()
        task = await self._handler.create_task(task_dir, request.max_subtasks_count, params)
        reply = pb.CreateTaskReply(
            env_id=task.env_id,
            prerequisites_json=json.dumps(task.prerequisites),
        )
        if task.inf_requirements.min_memory_mib is not None:
            reply.inf_requirements.min_memory_mib = task.inf_requirements.min_memory_mib
        else:
            reply.inf_requirements.SetInParent()
        return reply

    async def NextSubtask(self, stream: Stream[Any, Any]) -> None:
        await _serve_unary(stream, "NextSubtask", self.in_flight, self._next_subtask)

    async def _next_subtask(self, request: pb.NextSubtaskRequest) -> pb.NextSubtaskReply:
        task_dir = self._task_dir(request.task_id)
        subtask_id = _check_component(request.subtask_id, "subtask_id")
        subtask = await self._handler.next_subtask(task_dir, subtask_id, request.opaque_node_id)
        if subtask is None:
            return pb.NextSubtaskReply()
        return pb.NextSubtaskReply(
            subtask=pb.SubtaskReply(
                subtask_params_json=json.dumps(subtask.params),
                resources=list(subtask.resources),
            )
        )

    async def Verify(self, stream: Stream[Any, Any]) -> None:
        await _serve_unary(stream, "Verify", self.in_flight, self._verify)

    async def _verify(self, request: pb.VerifyRequest) -> pb.VerifyReply:
        task_dir = self._task_dir(request.task_id)
        subtask_id = _check_component(request.subtask_id, "subtask_id")
        result, reason = await self._handler.verify(task_dir, subtask_id)
        try:
            name = VerifyResult(result).name
        except ValueError:
            # The app's bug, not the caller's: must not become INVALID_ARGUMENT.
            raise RuntimeError(f"verify returned an invalid result: {result!r}") from None
        return pb.VerifyReply(result=name, reason=reason or "")

    async def DiscardSubtasks(self, stream: Stream[Any, Any]) -> None:
        await _serve_unary(stream, "DiscardSubtasks", self.in_flight, self._discard_subtasks)

    async def _discard_subtasks(
        self, request: pb.DiscardSubtasksRequest
    ) -> pb.DiscardSubtasksReply:
        task_dir = self._task_dir(request.task_id)
        ids = [_check_component(i, "subtask_id") for i in request.subtask_ids]
        discarded = await self._handler.discard_subtasks(task_dir, ids)
        return pb.DiscardSubtasksReply(discarded_subtask_ids=list(discarded))

    async def RunBenchmark(self, stream: Stream[Any, Any]) -> None:
        await _serve_unary(stream, "RunBenchmark", self.in_flight, self._run_benchmark)

    async def _run_benchmark(self, request: pb.RunBenchmarkRequest) -> pb.RunBenchmarkReply:
        score = await self._handler.run_benchmark(Path(self._work_dir))
        return pb.RunBenchmarkReply(score=score)

    async def HasPendingSubtasks(self, stream: Stream[Any, Any]) -> None:
        await _serve_unary(
            stream, "HasPendingSubtasks", self.in_flight, self._has_pending_subtasks
        )

    async def _has_pending_subtasks(
        self, request: pb.HasPendingSubtasksRequest
    ) -> pb.HasPendingSubtasksReply:
        task_dir = self._task_dir(request.task_id)
        pending = await self._handler.has_pending_subtasks(task_dir)
        return pb.HasPendingSubtasksReply(has_pending_subtasks=bool(pending))

    async def AbortTask(self, stream: Stream[Any, Any]) -> None:
        await _serve_unary(stream, "AbortTask", self.in_flight, self._abort_task)

    async def _abort_task(self, request: pb.AbortTaskRequest) -> pb.AbortTaskReply:
        await self._handler.abort_task(self._task_dir(request.task_id))
        return pb.AbortTaskReply()

    async def AbortSubtask(self, stream: Stream[Any, Any]) -> None:
        await _serve_unary(stream, "AbortSubtask", self.in_flight, self._abort_subtask)

    async def _abort_subtask(self, request: pb.AbortSubtaskRequest) -> pb.AbortSubtaskReply:
        task_dir = self._task_dir(request.task_id)
        subtask_id = _check_component(request.subtask_id, "subtask_id")
        await self._handler.abort_subtask(task_dir, subtask_id)
        return pb.AbortSubtaskReply()

    async def Shutdown(self, stream: Stream[Any, Any]) -> None:
        try:
            await _serve_unary(stream, "Shutdown", self.in_flight, _shutdown_reply)
        finally:
            self._lifecycle.request_shutdown()


async def _shutdown_reply(request: pb.ShutdownRequest) -> pb.ShutdownReply:
    return pb.ShutdownReply()


class ProviderServer(ProviderAppBase):
    """Serves ProviderApp: one Compute or RunBenchmark, then shuts itself down."""

    def __init__(
        self,
        work_dir: Path,
        handler: ProviderAppHandler,
        lifecycle: AppLifecycleHandler,
    ) -> None:
        self._work_dir = work_dir
        self._handler = handler
        self._lifecycle = lifecycle
        self._request_taken = False
        self.in_flight = _InFlight()

    def _take_request(self) -> None:
        if self._request_taken:
            raise FailedPreconditionError("a provider serves one request per process")
        self._request_taken = True

    async def Compute(self, stream: Stream[Any, Any]) -> None:
        await self._one_request(stream, "Compute", self._compute)

    async def _compute(self, request: pb.ComputeRequest) -> pb.ComputeReply:
        subtask_id = _check_component(request.subtask_id, "subtask_id")
        params = _parse_json_object(request.subtask_params_json, "subtask_params_json")
        output = Path(await self._handler.compute(self._work_dir, subtask_id, params))
        if output.is_absolute():
            # The node resolves the path against the work dir it mounted.
            if not output.is_relative_to(self._work_dir):
                raise RuntimeError(f"compute returned a path outside the work dir: {output}")
            output = output.relative_to(self._work_dir)
        return pb.ComputeReply(output_filepath=str(output))

    async def RunBenchmark(self, stream: Stream[Any, Any]) -> None:
        await self._one_request(stream, "RunBenchmark", self._run_benchmark)

    async def _run_benchmark(self, request: pb.RunBenchmarkRequest) -> pb.RunBenchmarkReply:
        score = await self._handler.run_benchmark(self._work_dir)
        return pb.RunBenchmarkReply(score=score)

    async def _one_request(
        self,
        stream: Stream[Any, Any],
        method: str,
        func: Callable[[Any], Awaitable[Any]],
    ) -> None:
        # Per call, not read from the shared flag: a rejected call that was
        # in flight alongside the one taking the request must not end it.
        took_request = False

        async def take_and_serve(request: Any) -> Any:
            nonlocal took_request
            self._take_request()
            took_request = True
            return await func(request)

        try:
            await _serve_unary(stream, method, self.in_flight, take_and_serve)
        finally:
            # Only the call that took the one request ends the process.
            if took_request:
                self._lifecycle.request_shutdown()

    async def Shutdown(self, stream: Stream[Any, Any]) -> None:
        try:
            await _serve_unary(stream, "Shutdown", self.in_flight, _shutdown_reply)
        finally:
            self._lifecycle.request_shutdown()


class _ClosingServer(Server):
    """A grpclib Server that also closes its client connections when it stops.

    grpclib's close() stops listening and cancels calls but leaves accepted
    connections open; they would then be torn down by the loop closing
    (ResourceWarning) instead of being closed after their last reply went out.
    """

    def __init__(self, handlers: Sequence[Any]) -> None:
        super().__init__(handlers)
        self._transports: set[asyncio.BaseTransport] = set()

    def _protocol_factory(self) -> Any:
        protocol = super()._protocol_factory()
        made = protocol.connection_made

        def connection_made(transport: asyncio.BaseTransport) -> None:
            self._transports.add(transport)
            made(transport)

        # Per instance: the loop looks the callback up on the protocol object.
        setattr(protocol, "connection_made", connection_made)
        return protocol

    async def close_connections(self) -> None:
        """Close every accepted connection (flushing what was written) and let the loop run it."""
        for transport in self._transports:
            if not transport.is_closing():
                transport.close()
        self._transports.clear()
        await asyncio.sleep(0)


def configure_logging() -> None:
    """Log to stderr at $GOLEM_TASK_API_LOG_LEVEL (default INFO) unless the app already set logging up."""
    root = logging.getLogger()
    if root.handlers:
        return
    level_name = os.environ.get(constants.LOG_LEVEL_ENV_VAR, "INFO").upper()
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):
        level = logging.INFO
    logging.basicConfig(
        stream=sys.stderr,
        level=level,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    if level_name != logging.getLevelName(level):
        log.warning("unknown log level %r in %s; using INFO", level_name, constants.LOG_LEVEL_ENV_VAR)


def parse_argv(argv: Sequence[str]) -> tuple[str, int]:
    """Split `[requestor|provider, PORT]` into the role and the port number."""
    if not argv or argv[0] not in ("requestor", "provider"):
        raise ValueError(f"usage: requestor|provider [PORT]; got {list(argv)!r}")
    role = argv[0]
    default = (
        constants.DEFAULT_REQUESTOR_PORT if role == "requestor" else constants.DEFAULT_PROVIDER_PORT
    )
    if len(argv) > 2:
        raise ValueError(f"usage: {role} [PORT]; got {list(argv)!r}")
    port = int(argv[1]) if len(argv) == 2 else default
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range: {port}")
    return role, port


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


async def entrypoint(
    work_dir: Path,
    argv: Sequence[str],
    requestor_handler: Optional[RequestorAppHandler] = None,
    requestor_lifecycle_handler: Optional[AppLifecycleHandler] = None,
    provider_handler: Optional[ProviderAppHandler] = None,
    provider_lifecycle_handler: Optional[AppLifecycleHandler] = None,
) -> None:
    """Serve the role named by argv (`requestor|provider PORT`) until told to shut down."""
    configure_logging()
    role, port = parse_argv([str(a) for a in argv])
    work_dir = Path(work_dir)
    servicer: RequestorServer | ProviderServer
    if role == "requestor":
        if requestor_handler is None:
            raise ValueError("requestor role needs a requestor_handler")
        lifecycle = requestor_lifecycle_handler or _DefaultLifecycle()
        servicer = RequestorServer(work_dir, requestor_handler, lifecycle)
    else:
        if provider_handler is None:
            raise ValueError("provider role needs a provider_handler")
        lifecycle = provider_lifecycle_handler or _DefaultLifecycle()
        servicer = ProviderServer(work_dir, provider_handler, lifecycle)
    await _serve(role, port, work_dir, servicer, lifecycle)


class _DefaultLifecycle(AppLifecycleHandler):
    """Lifecycle used when the app gives none: no hooks."""


async def _serve(
    role: str,
    port: int,
    work_dir: Path,
    servicer: RequestorServer | ProviderServer,
    lifecycle: AppLifecycleHandler,
) -> None:
    Executor.initialize()
    shutdown_future = lifecycle.shutdown_future
    signals = _install_signal_handlers(lifecycle)
    # Answers for "" and for the app service's name; NOT_SERVING once a
    # shutdown starts so nobody sends new work while running calls drain.
    serving = ServiceStatus()
    serving.set(True)
    server = _ClosingServer([servicer, Health({servicer: [serving]})])
    started = False
    try:
        await lifecycle.on_before_startup()
        ssl_context = tls.server_ssl_context(work_dir)
        await server.start(None, port, ssl=ssl_context)
        started = True
        log.info(
            "%s server listening on port %d (%s, loop %s)",
            role, port, "mutual TLS" if ssl_context else "plaintext",
            type(asyncio.get_running_loop()).__module__,
        )
        await lifecycle.on_after_startup()
        await shutdown_future
        serving.set(False)
        log.info("%s server shutting down", role)
        # Before waiting for running calls: the hook may be what stops them
        # (e.g. an app's compute pool), and Executor users already saw the flag.
        await lifecycle.on_before_shutdown()
        if not await servicer.in_flight.wait_idle(SHUTDOWN_GRACE_SECONDS):
            log.warning("calls still running after %.1f s; cancelling them", SHUTDOWN_GRACE_SECONDS)
    finally:
        # Also reached on a startup failure or cancellation: stop computations too.
        Executor.request_shutdown()
        if started:
            server.close()
            await server.wait_closed()
            await server.close_connections()
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.remove_signal_handler(sig)
    await lifecycle.on_after_shutdown()
    log.info("%s server stopped", role)


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """Run an app's main coroutine to completion, on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
