"""Connections are forgotten when closed and bounded when idle (issue 10, item 13)."""
from __future__ import annotations

import asyncio
import socket
import sys
import textwrap
from pathlib import Path

import pytest
from grpclib.client import Channel

import golem_task_api as api
from golem_task_api import grpcserver
from golem_task_api.client import RequestorAppClient
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto.golem_task_api_grpc import RequestorAppStub
from golem_task_api.testutils import SubprocessTaskApiService, find_free_port


class _Benchmark(api.RequestorAppHandler):
    async def run_benchmark(self, work_dir: Path) -> float:
        return 1.5


async def _wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_closed_connections_are_forgotten(tmp_path: Path) -> None:
    async def scenario() -> None:
        lifecycle = api.AppLifecycleHandler()
        server = api.server.RequestorAppServer(tmp_path, 0, _Benchmark(), lifecycle)
        await server.start()
        try:
            for _ in range(50):
                _, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
                writer.close()
                await writer.wait_closed()
            channel = Channel("127.0.0.1", server.bound_port)
            assert (await RequestorAppStub(channel).RunBenchmark(pb.RunBenchmarkRequest())).score == 1.5
            channel.close()
            await _wait_for(lambda: server.open_connections == 0)
        finally:
            lifecycle.request_shutdown()
            await server.stop()

    asyncio.run(scenario())


def test_idle_connections_are_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpcserver, "IDLE_TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(grpcserver, "SWEEP_INTERVAL_SECONDS", 0.05)

    async def scenario() -> None:
        lifecycle = api.AppLifecycleHandler()
        server = api.server.RequestorAppServer(tmp_path, 0, _Benchmark(), lifecycle)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
            await _wait_for(lambda: server.open_connections == 1)
            # The server closes the silent connection: the client reads EOF.
            assert await asyncio.wait_for(reader.read(), 3) is not None
            await _wait_for(lambda: server.open_connections == 0)
            writer.close()
        finally:
            lifecycle.request_shutdown()
            await server.stop()

    asyncio.run(scenario())


# A requestor server allowed only 128 open files.
_LIMITED_SERVER = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
    import golem_task_api as api

    class Benchmark(api.RequestorAppHandler):
        async def run_benchmark(self, work_dir):
            return 2.5

    api.run(api.entrypoint.main(Path(sys.argv[1]), sys.argv[2:], requestor_handler=Benchmark()))
""")

_FLOOD = 300


@pytest.mark.timeout(60)
def test_idle_connections_cannot_lock_the_node_out(tmp_path: Path) -> None:
    async def scenario() -> None:
        service = SubprocessTaskApiService(
            tmp_path, [sys.executable, "-c", _LIMITED_SERVER, str(tmp_path)])
        port = find_free_port()
        client = await RequestorAppClient.create(service, port)
        flood: list[socket.socket] = []
        try:
            # Idle, unauthenticated connections: more than the server has files.
            for _ in range(_FLOOD):
                flood.append(socket.create_connection(("127.0.0.1", port)))
            # The node opens a fresh connection and is served.
            channel = Channel("127.0.0.1", port)
            try:
                reply = await RequestorAppStub(channel).RunBenchmark(
                    pb.RunBenchmarkRequest(), timeout=10)
            finally:
                channel.close()
            assert reply.score == 2.5
            assert service.running()
        finally:
            for sock in flood:
                sock.close()
            await client.shutdown()
        assert service.returncode == 0

    asyncio.run(scenario())


def test_an_unfinished_tls_handshake_is_dropped(
    tls_files, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setattr(grpcserver, "TLS_HANDSHAKE_TIMEOUT_SECONDS", 0.3)

    async def scenario() -> None:
        lifecycle = api.AppLifecycleHandler()
        server = api.server.RequestorAppServer(tls_files.app_dir, 0, _Benchmark(), lifecycle)
        await server.start()
        try:
            # Connects, never says hello: the server hangs up after the timeout.
            reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
            assert await asyncio.wait_for(reader.read(), 3) == b""
            writer.close()
        finally:
            lifecycle.request_shutdown()
            await server.stop()

    asyncio.run(scenario())
