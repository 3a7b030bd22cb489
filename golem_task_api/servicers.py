"""The RequestorApp and ProviderApp gRPC servicers over an app's handlers.

They translate requests into handler calls (with the task dir types of
`dirutils`) and handler results into replies; errors become statuses in
`golem_task_api.statuses`.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Awaitable, Callable

from grpclib.server import Stream

from golem_task_api.bounds import check_id as _check_component
from golem_task_api.bounds import check_node_id
from golem_task_api.bounds import parse_json_object as _parse_json_object
from golem_task_api.dirutils import ProviderTaskDir, RequestorDir, RequestorTaskDir
from golem_task_api.enums import VerifyResult
from golem_task_api.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from golem_task_api.handlers import AppLifecycleHandler, ProviderAppHandler, RequestorAppHandler
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto.golem_task_api_grpc import ProviderAppBase, RequestorAppBase
from golem_task_api.statuses import InFlight, serve_unary


async def _shutdown_reply(request: pb.ShutdownRequest) -> pb.ShutdownReply:
    return pb.ShutdownReply()


class RequestorApp(RequestorAppBase):
    """Serves RequestorApp over the app's RequestorAppHandler."""

    ROLE = "requestor"

    def __init__(
        self,
        work_dir: Path,
        handler: RequestorAppHandler,
        lifecycle: AppLifecycleHandler,
    ) -> None:
        self._work_dir = RequestorDir(work_dir)
        self._handler = handler
        self._lifecycle = lifecycle
        self.in_flight = InFlight()

    def _task_dir(self, task_id: str) -> RequestorTaskDir:
        task_dir = self._work_dir.task_dir(_check_component(task_id, "task_id"))
        if not task_dir.is_dir():
            raise NotFoundError(f"task {task_id!r} not found")
        return task_dir

    async def CreateTask(self, stream: Stream[Any, Any]) -> None:
        await serve_unary(stream, "CreateTask", self.in_flight, self._create_task)

    async def _create_task(self, request: pb.CreateTaskRequest) -> pb.CreateTaskReply:
        task_dir = self._work_dir.task_dir(_check_component(request.task_id, "task_id"))
        params = _parse_json_object(request.task_params_json, "task_params_json")
        created_here = not os.path.lexists(task_dir)
        if not created_here and not task_dir.is_dir():
            raise InvalidArgumentError(
                f"task_id {request.task_id!r} names an existing file, not a task dir")
        try:
            # The node normally creates these; creating them here is harmless.
            task_dir.prepare()
            task = await self._handler.create_task(task_dir, request.max_subtasks_count, params)
        except BaseException:
            # A refused task leaves no trace, but a dir the node made is not ours to remove.
            if created_here:
                shutil.rmtree(task_dir, ignore_errors=True)
            raise
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
        await serve_unary(stream, "NextSubtask", self.in_flight, self._next_subtask)

    async def _next_subtask(self, request: pb.NextSubtaskRequest) -> pb.NextSubtaskReply:
        task_dir = self._task_dir(request.task_id)
        subtask_id = _check_component(request.subtask_id, "subtask_id")
        subtask = await self._handler.next_subtask(task_dir, subtask_id, check_node_id(request.opaque_node_id))
        if subtask is None:
            return pb.NextSubtaskReply()
        return pb.NextSubtaskReply(
            subtask=pb.SubtaskReply(
                subtask_params_json=json.dumps(subtask.params),
                resources=list(subtask.resources),
            )
        )

    async def Verify(self, stream: Stream[Any, Any]) -> None:
        await serve_unary(stream, "Verify", self.in_flight, self._verify)

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
        await serve_unary(stream, "DiscardSubtasks", self.in_flight, self._discard_subtasks)

    async def _discard_subtasks(
        self, request: pb.DiscardSubtasksRequest
    ) -> pb.DiscardSubtasksReply:
        task_dir = self._task_dir(request.task_id)
        ids = [_check_component(i, "subtask_id") for i in request.subtask_ids]
        discarded = await self._handler.discard_subtasks(task_dir, ids)
        return pb.DiscardSubtasksReply(discarded_subtask_ids=list(discarded))

    async def RunBenchmark(self, stream: Stream[Any, Any]) -> None:
        await serve_unary(stream, "RunBenchmark", self.in_flight, self._run_benchmark)

    async def _run_benchmark(self, request: pb.RunBenchmarkRequest) -> pb.RunBenchmarkReply:
        score = await self._handler.run_benchmark(Path(self._work_dir))
        return pb.RunBenchmarkReply(score=score)

    async def HasPendingSubtasks(self, stream: Stream[Any, Any]) -> None:
        await serve_unary(
            stream, "HasPendingSubtasks", self.in_flight, self._has_pending_subtasks
        )

    async def _has_pending_subtasks(
        self, request: pb.HasPendingSubtasksRequest
    ) -> pb.HasPendingSubtasksReply:
        task_dir = self._task_dir(request.task_id)
        pending = await self._handler.has_pending_subtasks(task_dir)
        return pb.HasPendingSubtasksReply(has_pending_subtasks=bool(pending))

    async def AbortTask(self, stream: Stream[Any, Any]) -> None:
        await serve_unary(stream, "AbortTask", self.in_flight, self._abort_task)

    async def _abort_task(self, request: pb.AbortTaskRequest) -> pb.AbortTaskReply:
        await self._handler.abort_task(self._task_dir(request.task_id))
        return pb.AbortTaskReply()

    async def AbortSubtask(self, stream: Stream[Any, Any]) -> None:
        await serve_unary(stream, "AbortSubtask", self.in_flight, self._abort_subtask)

    async def _abort_subtask(self, request: pb.AbortSubtaskRequest) -> pb.AbortSubtaskReply:
        task_dir = self._task_dir(request.task_id)
        subtask_id = _check_component(request.subtask_id, "subtask_id")
        await self._handler.abort_subtask(task_dir, subtask_id)
        return pb.AbortSubtaskReply()

    async def Shutdown(self, stream: Stream[Any, Any]) -> None:
        try:
            await serve_unary(stream, "Shutdown", self.in_flight, _shutdown_reply)
        finally:
            self._lifecycle.request_shutdown()


class ProviderApp(ProviderAppBase):
    """Serves ProviderApp: one Compute or RunBenchmark, then shuts itself down."""

    ROLE = "provider"

    def __init__(
        self,
        work_dir: Path,
        handler: ProviderAppHandler,
        lifecycle: AppLifecycleHandler,
    ) -> None:
        self._work_dir = ProviderTaskDir(work_dir)
        self._handler = handler
        self._lifecycle = lifecycle
        self._request_taken = False
        self.in_flight = InFlight()

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
        work_dir = Path(self._work_dir)
        if output.is_absolute():
            # The node resolves the path against the work dir it mounted.
            if not output.is_relative_to(work_dir):
                raise RuntimeError(f"compute returned a path outside the work dir: {output}")
            output = output.relative_to(work_dir)
        return pb.ComputeReply(output_filepath=str(output))

    async def RunBenchmark(self, stream: Stream[Any, Any]) -> None:
        await self._one_request(stream, "RunBenchmark", self._run_benchmark)

    async def _run_benchmark(self, request: pb.RunBenchmarkRequest) -> pb.RunBenchmarkReply:
        score = await self._handler.run_benchmark(Path(self._work_dir))
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
            # Even a refused request ends the process: the node starts one per request.
            return await func(request)

        try:
            await serve_unary(stream, method, self.in_flight, take_and_serve)
        finally:
            # Only the call that took the one request ends the process.
            if took_request:
                self._lifecycle.request_shutdown()

    async def Shutdown(self, stream: Stream[Any, Any]) -> None:
        try:
            await serve_unary(stream, "Shutdown", self.in_flight, _shutdown_reply)
        finally:
            self._lifecycle.request_shutdown()
