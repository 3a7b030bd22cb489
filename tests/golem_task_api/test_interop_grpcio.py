"""Google's grpcio, an independent gRPC implementation, drives our server.

Generic unary calls on the method paths, encoded with our message classes,
must get the answers our own client gets.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from golem_task_api import structs
from golem_task_api.client import ProviderAppClient, RequestorAppClient
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
    assert (VerifyResult(theirs["verify"][0]), theirs["verify"][1] or None) == ours["verify"]
    assert ours["verify"] == (VerifyResult.AWAITING_DATA, None)
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
