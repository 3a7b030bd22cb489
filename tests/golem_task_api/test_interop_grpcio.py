"""Google's grpcio, an independent gRPC implementation, drives our server.

Generic unary calls on the method paths, encoded with our message classes,
must get the answers our own client gets.
"""
from __future__ import annotations

import asyncio
import json
import threading
from concurrent import futures
from pathlib import Path
from typing import Any, Optional

import grpc
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from golem_task_api import structs
from golem_task_api.client import ProviderAppClient, RequestorAppClient, TaskApiService
from golem_task_api.dirutils import ProviderTaskDir, RequestorDir
from golem_task_api.enums import VerifyResult
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.testutils import InlineTaskApiService, find_free_port

from gta_fakes import FakeProviderHandler, FakeRequestorHandler

_SERVICE = "/golem_task_api.RequestorApp/"


def _grpcio_call(channel: grpc.Channel, method: str, request: Any, reply_type: Any) -> Any:
    call = channel.unary_unary(
        method,
        request_serializer=type(request).SerializeToString,
        response_deserializer=reply_type.FromString,
    )
    return call(request, timeout=10)


def _grpcio_session(port: int, work_dir: Path) -> dict[str, Any]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        out: dict[str, Any] = {}
        out["health"] = _grpcio_call(
            channel, "/grpc.health.v1.Health/Check", HealthCheckRequest(service=""),
            HealthCheckResponse,
        ).status
        RequestorDir(work_dir).task_dir("g").prepare()
        (RequestorDir(work_dir).task_dir("g").task_inputs_dir / "in.txt").write_text("1")
        reply = _grpcio_call(channel, _SERVICE + "CreateTask", pb.CreateTaskRequest(
            task_id="g", max_subtasks_count=2, task_params_json='{"tag": "9"}'), pb.CreateTaskReply)
        out["task"] = (reply.env_id, reply.prerequisites_json, reply.inf_requirements.min_memory_mib)
        reply = _grpcio_call(channel, _SERVICE + "NextSubtask", pb.NextSubtaskRequest(
            task_id="g", subtask_id="g1", opaque_node_id="n"), pb.NextSubtaskReply)
        out["subtask"] = (reply.subtask.subtask_params_json, list(reply.subtask.resources))
        out["banned"] = _grpcio_call(channel, _SERVICE + "NextSubtask", pb.NextSubtaskRequest(
            task_id="g", subtask_id="g2", opaque_node_id="banned"), pb.NextSubtaskReply
        ).HasField("subtask")
        reply = _grpcio_call(channel, _SERVICE + "Verify", pb.VerifyRequest(
            task_id="g", subtask_id="g1"), pb.VerifyReply)
        out["verify"] = (reply.result, reply.reason)
        out["pending"] = _grpcio_call(channel, _SERVICE + "HasPendingSubtasks",
            pb.HasPendingSubtasksRequest(task_id="g"), pb.HasPendingSubtasksReply
        ).has_pending_subtasks
        out["discarded"] = list(_grpcio_call(channel, _SERVICE + "DiscardSubtasks",
            pb.DiscardSubtasksRequest(task_id="g", subtask_ids=["g1", "zz"]),
            pb.DiscardSubtasksReply).discarded_subtask_ids)
        out["benchmark"] = _grpcio_call(channel, _SERVICE + "RunBenchmark",
            pb.RunBenchmarkRequest(), pb.RunBenchmarkReply).score
        out["abort"] = _grpcio_call(channel, _SERVICE + "AbortTask",
            pb.AbortTaskRequest(task_id="g"), pb.AbortTaskReply)
        try:
            _grpcio_call(channel, _SERVICE + "Verify", pb.VerifyRequest(
                task_id="missing", subtask_id="x"), pb.VerifyReply)
        except grpc.RpcError as error:
            out["missing"] = error.code()
        return out


async def _grpclib_session(client: RequestorAppClient, work_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"health": HealthCheckResponse.SERVING}  # create() waited for it
    RequestorDir(work_dir).task_dir("o").prepare()
    (RequestorDir(work_dir).task_dir("o").task_inputs_dir / "in.txt").write_text("1")
    task = await client.create_task("o", 2, {"tag": "9"})
    out["task"] = task
    out["subtask"] = await client.next_subtask("o", "g1", "n")
    out["banned"] = await client.next_subtask("o", "g2", "banned")
    out["verify"] = await client.verify("o", "g1")
    out["pending"] = await client.has_pending_subtasks("o")
    out["discarded"] = await client.discard_subtasks("o", ["g1", "zz"])
    out["benchmark"] = await client.run_benchmark()
    out["abort"] = await client.abort_task("o")
    return out


def test_grpcio_gets_the_same_answers_as_our_client(tmp_path: Path) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        port = find_free_port()
        service = InlineTaskApiService(tmp_path, requestor_handler=FakeRequestorHandler())
        client = await RequestorAppClient.create(service, port)
        try:
            ours = await _grpclib_session(client, tmp_path)
            theirs = await asyncio.get_running_loop().run_in_executor(
                None, _grpcio_session, port, tmp_path
            )
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                shutdown = await asyncio.get_running_loop().run_in_executor(
                    None, _grpcio_call, channel, _SERVICE + "Shutdown", pb.ShutdownRequest(),
                    pb.ShutdownReply,
                )
            assert shutdown == pb.ShutdownReply()
            await asyncio.wait_for(service.wait_until_shutdown_complete(), 10)
            assert service.exitcode == 0
            return ours, theirs
        finally:
            await client.shutdown()

    ours, theirs = asyncio.run(scenario())
    assert theirs["health"] == ours["health"] == HealthCheckResponse.SERVING
    env_id, prerequisites_json, min_memory = theirs["task"]
    assert ours["task"] == structs.Task(
        env_id, json.loads(prerequisites_json), structs.Infrastructure(min_memory)
    )
    params_json, resources = theirs["subtask"]
    assert ours["subtask"] == structs.Subtask(json.loads(params_json), resources)
    assert theirs["banned"] is False and ours["banned"] is None
    assert (VerifyResult(theirs["verify"][0]), theirs["verify"][1]) == ours["verify"]
    # The published client's answer when the app gives no reason: '', not None.
    assert ours["verify"] == (VerifyResult.AWAITING_DATA, "")
    assert theirs["pending"] == ours["pending"] is True
    assert theirs["discarded"] == ours["discarded"] == ["g1"]
    assert theirs["benchmark"] == ours["benchmark"] == 42.5
    assert theirs["abort"] == pb.AbortTaskReply() and ours["abort"] is None
    assert theirs["missing"] == grpc.StatusCode.NOT_FOUND


def test_grpcio_drives_a_provider(tmp_path: Path) -> None:
    work_dir = ProviderTaskDir(tmp_path)
    work_dir.prepare()
    (work_dir.subtask_inputs_dir / "in.txt").write_text("q")

    async def scenario() -> str:
        port = find_free_port()
        service = InlineTaskApiService(work_dir, provider_handler=FakeProviderHandler())
        client = await ProviderAppClient.create(service, port)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = await asyncio.get_running_loop().run_in_executor(
                    None, _grpcio_call, channel, "/golem_task_api.ProviderApp/Compute",
                    pb.ComputeRequest(task_id="t", subtask_id="s", subtask_params_json='{"index": 4}'),
                    pb.ComputeReply,
                )
            await asyncio.wait_for(service.wait_until_shutdown_complete(), 10)
            assert service.exitcode == 0
            return reply.output_filepath
        finally:
            await client.shutdown()

    output = asyncio.run(scenario())
    assert output == "s/result.txt"
    assert (work_dir / output).read_text() == "good 4 q"


# --- the reverse direction: our clients drive an app served by grpcio ---

class _GrpcioApp(TaskApiService):
    """A Task API app written with grpcio generic handlers, run in this process."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._server: Optional[grpc.Server] = None
        self._shutdown_asked = threading.Event()

    def _unary(self, name: str, request_type: Any, reply_type: Any, answer: Any) -> Any:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            self.calls.append((name, request))
            return answer(request, context)

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=request_type.FromString,
            response_serializer=reply_type.SerializeToString,
        )

    def _requestor_methods(self) -> dict[str, Any]:
        def verify(request: pb.VerifyRequest, context: grpc.ServicerContext) -> pb.VerifyReply:
            if request.task_id != "t":
                context.abort(grpc.StatusCode.NOT_FOUND, f"no task {request.task_id}")
            return pb.VerifyReply(result=pb.VerifyReply.VerifyResult.FAILURE, reason="nope")

        def next_subtask(request: pb.NextSubtaskRequest, context: Any) -> pb.NextSubtaskReply:
            if request.opaque_node_id == "banned":
                return pb.NextSubtaskReply()
            return pb.NextSubtaskReply(subtask=pb.SubtaskReply(
                subtask_params_json=json.dumps({"for": request.subtask_id}), resources=["a", "b"]))

        u = self._unary
        return {
            "CreateTask": u("CreateTask", pb.CreateTaskRequest, pb.CreateTaskReply,
                lambda r, c: pb.CreateTaskReply(
                    env_id="docker_cpu", prerequisites_json=r.task_params_json,
                    inf_requirements=pb.Infrastructure(min_memory_mib=r.max_subtasks_count * 1.5))),
            "NextSubtask": u("NextSubtask", pb.NextSubtaskRequest, pb.NextSubtaskReply, next_subtask),
            "Verify": u("Verify", pb.VerifyRequest, pb.VerifyReply, verify),
            "DiscardSubtasks": u("DiscardSubtasks", pb.DiscardSubtasksRequest,
                pb.DiscardSubtasksReply,
                lambda r, c: pb.DiscardSubtasksReply(discarded_subtask_ids=r.subtask_ids[:1])),
            "RunBenchmark": u("RunBenchmark", pb.RunBenchmarkRequest, pb.RunBenchmarkReply,
                lambda r, c: pb.RunBenchmarkReply(score=3.5)),
            "HasPendingSubtasks": u("HasPendingSubtasks", pb.HasPendingSubtasksRequest,
                pb.HasPendingSubtasksReply,
                lambda r, c: pb.HasPendingSubtasksReply(has_pending_subtasks=True)),
            "AbortTask": u("AbortTask", pb.AbortTaskRequest, pb.AbortTaskReply,
                lambda r, c: pb.AbortTaskReply()),
            "AbortSubtask": u("AbortSubtask", pb.AbortSubtaskRequest, pb.AbortSubtaskReply,
                lambda r, c: pb.AbortSubtaskReply()),
            "Shutdown": u("Shutdown", pb.ShutdownRequest, pb.ShutdownReply, self._shutdown),
        }

    def _provider_methods(self) -> dict[str, Any]:
        u = self._unary
        return {
            "Compute": u("Compute", pb.ComputeRequest, pb.ComputeReply,
                lambda r, c: pb.ComputeReply(output_filepath=f"{r.subtask_id}/out.zip")),
            "RunBenchmark": u("RunBenchmark", pb.RunBenchmarkRequest, pb.RunBenchmarkReply,
                lambda r, c: pb.RunBenchmarkReply(score=2.0)),
            "Shutdown": u("Shutdown", pb.ShutdownRequest, pb.ShutdownReply, self._shutdown),
        }

    def _shutdown(self, request: pb.ShutdownRequest, context: Any) -> pb.ShutdownReply:
        self._shutdown_asked.set()
        return pb.ShutdownReply()

    async def start(self, command: str, port: int) -> tuple[str, int]:
        # As published services do: the command is one string, "requestor 50005".
        role, given_port = command.split(" ")
        assert int(given_port) == port
        service = "golem_task_api.RequestorApp" if role == "requestor" else "golem_task_api.ProviderApp"
        methods = self._requestor_methods() if role == "requestor" else self._provider_methods()
        health = {"Check": grpc.unary_unary_rpc_method_handler(
            lambda r, c: HealthCheckResponse(status=HealthCheckResponse.SERVING),
            request_deserializer=HealthCheckRequest.FromString,
            response_serializer=HealthCheckResponse.SerializeToString,
        )}
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self._server.add_generic_rpc_handlers([
            grpc.method_handlers_generic_handler(service, methods),
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", health),
        ])
        self._server.add_insecure_port(f"127.0.0.1:{port}")
        self._server.start()
        return "127.0.0.1", port

    def running(self) -> bool:
        return self._server is not None

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.get_running_loop().run_in_executor(None, lambda: server.stop(None).wait())

    async def wait_until_shutdown_complete(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown_asked.wait)
        await self.stop()


def test_our_requestor_client_drives_a_grpcio_app() -> None:
    app = _GrpcioApp()

    async def scenario() -> None:
        client = await RequestorAppClient.create(app, find_free_port())
        try:
            assert await client.create_task("t", 4, {"image": "i", "tag": "2"}) == structs.Task(
                "docker_cpu", {"image": "i", "tag": "2"}, structs.Infrastructure(6.0)
            )
            assert await client.next_subtask("t", "s1", "n") == structs.Subtask({"for": "s1"}, ["a", "b"])
            assert await client.next_subtask("t", "s2", "banned") is None
            assert await client.verify("t", "s1") == (VerifyResult.FAILURE, "nope")
            with pytest.raises(GRPCError) as raised:
                await client.verify("gone", "s1")
            assert raised.value.status is Status.NOT_FOUND and raised.value.message == "no task gone"
            assert await client.discard_subtasks("t", ["s1", "s2"]) == ["s1"]
            assert await client.run_benchmark() == 3.5
            assert await client.has_pending_subtasks("t") is True
            assert await client.abort_subtask("t", "s1") is None
            assert await client.abort_task("t") is None
        finally:
            await client.shutdown(timeout=5)
        assert not app.running()

    asyncio.run(scenario())
    names = [name for name, _ in app.calls]
    assert names[-1] == "Shutdown"
    sent = dict(app.calls)
    assert sent["CreateTask"] == pb.CreateTaskRequest(
        task_id="t", max_subtasks_count=4, task_params_json='{"image": "i", "tag": "2"}'
    )
    assert sent["AbortSubtask"] == pb.AbortSubtaskRequest(task_id="t", subtask_id="s1")
    assert sent["DiscardSubtasks"] == pb.DiscardSubtasksRequest(task_id="t", subtask_ids=["s1", "s2"])


def test_our_provider_client_drives_a_grpcio_app() -> None:
    app = _GrpcioApp()

    async def scenario() -> Path:
        client = await ProviderAppClient.create(app, find_free_port())
        try:
            return await client.compute("t", "s9", {"n": 1})
        finally:
            await client.shutdown(timeout=5)

    assert asyncio.run(scenario()) == Path("s9/out.zip")
    assert app.calls[0] == ("Compute", pb.ComputeRequest(
        task_id="t", subtask_id="s9", subtask_params_json='{"n": 1}'))
    assert not app.running()
