"""Graceful stops: Shutdown interrupting a blocked handler, repeated shutdowns."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from golem_task_api.client import RequestorAppClient
from golem_task_api.dirutils import RequestorDir
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto.golem_task_api_grpc import RequestorAppStub
from golem_task_api.testutils import InlineTaskApiService, find_free_port

from gta_fakes import STARTED_MARKER, BlockingVerifyHandler, FakeRequestorHandler, wait_for_file


def test_shutdown_stops_a_handler_blocked_in_executor_run(tmp_path: Path) -> None:
    async def scenario() -> None:
        service = InlineTaskApiService(tmp_path, requestor_handler=BlockingVerifyHandler())
        client = await RequestorAppClient.create(service, find_free_port())
        try:
            task_dir = RequestorDir(tmp_path).task_dir("t")
            task_dir.prepare()
            await client.create_task("t", 1, {})
            verify = asyncio.create_task(client.verify("t", "s1"))
            await wait_for_file(task_dir / STARTED_MARKER)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await client.shutdown(timeout=10)
            # Well inside the grace period: the handler stopped, nothing was killed.
            assert loop.time() - started < 4
            assert service.exitcode == 0
            with pytest.raises(GRPCError):
                await verify
        finally:
            await client.shutdown()

    asyncio.run(scenario())


def test_double_shutdown_is_harmless(tmp_path: Path) -> None:
    async def scenario() -> None:
        port = find_free_port()
        service = InlineTaskApiService(tmp_path, requestor_handler=FakeRequestorHandler())
        client = await RequestorAppClient.create(service, port)
        channel = Channel("127.0.0.1", port)
        try:
            stub = RequestorAppStub(channel)
            # Two Shutdown calls back to back on a raw stub, then the client's own.
            assert await stub.Shutdown(pb.ShutdownRequest()) == pb.ShutdownReply()
            try:
                await stub.Shutdown(pb.ShutdownRequest())
            except (GRPCError, StreamTerminatedError, OSError):
                pass  # the server may already be gone; it must not crash
            await client.shutdown(timeout=10)
            await client.shutdown(timeout=10)
            assert service.exitcode == 0
        finally:
            channel.close()
            await client.shutdown()

    asyncio.run(scenario())


def test_client_deadline_expires_and_server_keeps_serving(tmp_path: Path) -> None:
    async def scenario() -> None:
        service = InlineTaskApiService(tmp_path, requestor_handler=BlockingVerifyHandler())
        client = await RequestorAppClient.create(service, find_free_port())
        try:
            RequestorDir(tmp_path).task_dir("t").prepare()
            await client.create_task("t", 1, {})
            with pytest.raises((asyncio.TimeoutError, GRPCError)) as raised:
                await client.verify("t", "s1", timeout=0.3)
            if isinstance(raised.value, GRPCError):
                assert raised.value.status is Status.DEADLINE_EXCEEDED
            assert await client.has_pending_subtasks("t", timeout=5) is True
        finally:
            await client.shutdown(timeout=10)
        assert service.exitcode == 0

    asyncio.run(scenario())


def test_health_is_not_serving_while_a_shutdown_drains_running_calls(tmp_path: Path) -> None:
    from grpclib.health.v1.health_grpc import HealthStub
    from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

    from gta_fakes import RELEASE_MARKER, StubbornVerifyHandler

    async def scenario() -> None:
        port = find_free_port()
        service = InlineTaskApiService(tmp_path, requestor_handler=StubbornVerifyHandler())
        client = await RequestorAppClient.create(service, port)
        channel = Channel("127.0.0.1", port)
        try:
            task_dir = RequestorDir(tmp_path).task_dir("t")
            task_dir.prepare()
            await client.create_task("t", 1, {})
            verify = asyncio.create_task(client.verify("t", "s1"))
            await wait_for_file(task_dir / STARTED_MARKER)
            health = HealthStub(channel)
            before = await health.Check(HealthCheckRequest(service=""), timeout=5)
            assert before.status == HealthCheckResponse.SERVING
            await RequestorAppStub(channel).Shutdown(pb.ShutdownRequest(), timeout=5)
            # Still draining the running Verify, but no longer taking work.
            during = await health.Check(HealthCheckRequest(service=""), timeout=5)
            assert during.status == HealthCheckResponse.NOT_SERVING
            assert service.running()
            (task_dir / RELEASE_MARKER).write_text("go")
            assert (await verify)[1] == "released"
            await asyncio.wait_for(service.wait_until_shutdown_complete(), 10)
            assert service.exitcode == 0
        finally:
            channel.close()
            await client.shutdown()

    asyncio.run(scenario())


def test_server_closes_its_connections_before_the_loop_closes(tmp_path: Path) -> None:
    # Dev mode makes an app process report every transport left open at exit.
    import sys

    from golem_task_api.testutils import SubprocessTaskApiService

    log = tmp_path / "server.log"
    app = Path(__file__).with_name("gta_app.py")
    work_dir = tmp_path / "work"
    work_dir.mkdir()

    async def scenario() -> None:
        service = SubprocessTaskApiService(
            work_dir, [sys.executable, str(app), "--work-dir", str(work_dir)],
            env={"PYTHONDEVMODE": "1"}, log_path=log,
        )
        client = await RequestorAppClient.create(service, find_free_port())
        try:
            assert await client.run_benchmark(timeout=5) == 42.5
        finally:
            await client.shutdown(timeout=10)
        assert service.returncode == 0

    asyncio.run(scenario())
    text = log.read_text()
    assert "server stopped" in text
    assert "unclosed" not in text.lower(), text
