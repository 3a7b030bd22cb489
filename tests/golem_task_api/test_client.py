"""The node-side client: health wait, and shutdown that always cleans up."""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from grpclib.client import Channel
from grpclib.health.service import Health
from grpclib.server import Server

from golem_task_api.client import (
    RequestorAppClient, ServiceNotReadyError, TaskApiService, wait_until_serving,
)
from golem_task_api.proto.golem_task_api_grpc import RequestorAppStub
from golem_task_api.testutils import SubprocessTaskApiService, find_free_port


class _RecordingService(TaskApiService):
    """Pretends a server runs; records stop() calls."""

    def __init__(self) -> None:
        self.alive = False
        self.stops = 0

    async def start(self, command: list[str], port: int) -> tuple[str, int]:
        self.alive = True
        return "127.0.0.1", port

    def running(self) -> bool:
        return self.alive

    async def stop(self) -> None:
        self.stops += 1
        self.alive = False

    async def wait_until_shutdown_complete(self) -> None:
        while self.alive:
            await asyncio.sleep(0.01)


class _RecordingChannel(Channel):
    closes = 0

    def close(self) -> None:
        self.closes += 1
        super().close()


def test_shutdown_stops_the_service_even_when_the_shutdown_call_fails_oddly() -> None:
    async def scenario() -> tuple[_RecordingService, _RecordingChannel]:
        service = _RecordingService()
        await service.start(["requestor", "1"], 1)
        channel = _RecordingChannel("127.0.0.1", find_free_port())
        client = RequestorAppClient(service, RequestorAppStub(channel))

        async def unexpected(request: object, timeout: float) -> None:
            raise RuntimeError("not a connection error")

        client._stub.Shutdown = unexpected
        with pytest.raises(RuntimeError):
            await client.shutdown(timeout=1)
        return service, channel

    service, channel = asyncio.run(scenario())
    assert service.stops == 1 and not service.running()
    assert channel.closes == 1


def test_create_fails_fast_when_the_service_dies_before_serving(tmp_path: Path) -> None:
    service = SubprocessTaskApiService(
        tmp_path, [sys.executable, "-c", "import sys; sys.exit(3)", "--"]
    )
    started = time.monotonic()
    with pytest.raises(ServiceNotReadyError, match="exited"):
        asyncio.run(RequestorAppClient.create(service, find_free_port(), health_timeout=15))
    assert time.monotonic() - started < 5
    assert service.returncode == 3


class _AlwaysRunning:
    """A service that claims to run but never listens: every health poll is refused."""

    def running(self) -> bool:
        return True


@pytest.mark.timeout(10)
def test_a_health_wait_that_gives_up_says_what_the_last_poll_got() -> None:
    async def scenario() -> str:
        channel = Channel("127.0.0.1", find_free_port())
        try:
            with pytest.raises(ServiceNotReadyError) as raised:
                await wait_until_serving(channel, _AlwaysRunning(), timeout=0.3)  # type: ignore[arg-type]
        finally:
            channel.close()
        return str(raised.value)

    message = asyncio.run(scenario())
    assert "within 0.3 s" in message and "last: ConnectionRefusedError" in message


class _LateListener(TaskApiService):
    """A server that answers SERVING, but only starts listening ``delay`` s after start()."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.listening_at = 0.0
        self._server = Server([Health()])
        self._task: asyncio.Task[None] | None = None

    async def start(self, command: object, port: int) -> tuple[str, int]:
        async def listen_later() -> None:
            await asyncio.sleep(self.delay)
            await self._server.start("127.0.0.1", port)
            self.listening_at = time.monotonic()
        self._task = asyncio.create_task(listen_later())
        return "127.0.0.1", port

    def running(self) -> bool:
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._server.close()
        await self._server.wait_closed()

    async def wait_until_shutdown_complete(self) -> None:
        await self.stop()


@pytest.mark.timeout(10)
def test_a_server_that_starts_listening_late_is_dialled_within_milliseconds() -> None:
    """Waiting for a server is on the path of every start: a client that polls
    rarely (0.1 s) leaves a server that is ready unused for most of a poll."""
    async def scenario() -> float:
        service = _LateListener(delay=0.36)
        channel = await service.open_channel("requestor", find_free_port(), health_timeout=5)
        noticed = time.monotonic() - service.listening_at
        channel.close()
        await service.stop()
        return noticed

    assert asyncio.run(scenario()) < 0.05
