"""Bad inputs at the server boundary: bounded, fast, and never INTERNAL (issue 10, 4-7)."""
from __future__ import annotations

import asyncio
import errno
import statistics
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from grpclib.client import UnaryUnaryMethod
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from golem_task_api import bounds
from golem_task_api.client import ProviderAppClient, RequestorAppClient
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.statuses import client_message, status_for
from golem_task_api.testutils import InlineTaskApiService, find_free_port

from gta_fakes import FakeProviderHandler, FakeRequestorHandler

MiB = 1024 * 1024


async def _status(call: Awaitable[Any]) -> tuple[Status, str]:
    with pytest.raises(GRPCError) as raised:
        await call
    return raised.value.status, raised.value.message or ""


def _requestor(work_dir: Path, scenario: Callable[[RequestorAppClient], Awaitable[None]]) -> None:
    async def run() -> None:
        service = InlineTaskApiService(work_dir, requestor_handler=FakeRequestorHandler())
        client = await RequestorAppClient.create(service, find_free_port())
        try:
            await client.create_task("t", 3, {})
            await scenario(client)
            # Whatever was thrown at it, the server still answers.
            assert await client.has_pending_subtasks("t") is True
        finally:
            await client.shutdown()

    asyncio.run(run())


class _RawBytes:
    """A 'message' whose serialisation is the given bytes: malformed protobuf on the wire."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:  # noqa: N802 - the protobuf method name
        return self.data


@pytest.mark.timeout(60)
def test_long_ids_are_refused_at_once_without_echo(tmp_path: Path) -> None:
    async def scenario(client: RequestorAppClient) -> None:
        stub = client._stub
        latencies = []
        for _ in range(5):
            started = time.perf_counter()
            status, message = await _status(stub.HasPendingSubtasks(
                pb.HasPendingSubtasksRequest(task_id="a/" + "x" * (256 * 1024))))
            latencies.append(time.perf_counter() - started)
            assert status is Status.INVALID_ARGUMENT
            assert "task_id" in message and len(message) <= bounds.MAX_STATUS_MESSAGE_CHARS
        median = statistics.median(latencies)
        print(f"256 KiB task id refused: median {median * 1000:.1f} ms over 5")
        assert median < 0.1
        started = time.perf_counter()
        status, _ = await _status(stub.HasPendingSubtasks(
            pb.HasPendingSubtasksRequest(task_id="a/" + "x" * MiB)))
        assert status is Status.INVALID_ARGUMENT and time.perf_counter() - started < 0.5
        # Just over the bound: a clear refusal, not "File name too long" with a server path.
        status, message = await _status(client.next_subtask("t", "s" * 300, "node"))
        assert status is Status.INVALID_ARGUMENT and "subtask_id" in message
        assert str(tmp_path) not in message
        status, message = await _status(client.create_task("x" * 300, 1, {}))
        assert status is Status.INVALID_ARGUMENT
        assert not any(p.name.startswith("xxx") for p in tmp_path.iterdir())
        status, _ = await _status(client.discard_subtasks("t", ["ok", "y" * 10_000]))
        assert status is Status.INVALID_ARGUMENT
        # At the bound is fine.
        ok_id = "s" * bounds.MAX_ID_BYTES
        assert await client.next_subtask("t", ok_id, "node") is not None

    _requestor(tmp_path, scenario)


@pytest.mark.timeout(60)
def test_oversized_requests_are_refused_and_not_stored(tmp_path: Path) -> None:
    async def scenario(client: RequestorAppClient) -> None:
        status, _ = await _status(client.next_subtask("t", "s1", "n" * (5 * MiB)))
        assert status is Status.RESOURCE_EXHAUSTED
        status, _ = await _status(client.create_task("big", 1, {"blob": "b" * (5 * MiB)}))
        assert status is Status.RESOURCE_EXHAUSTED
        assert not (tmp_path / "big").exists()
        state = (tmp_path / "t" / "state.json").read_text()
        assert "nnnn" not in state and len(state) < 1000

    _requestor(tmp_path, scenario)


@pytest.mark.timeout(60)
def test_a_node_id_of_megabytes_is_refused_not_stored(tmp_path: Path) -> None:
    """Under the request limit but far beyond any node id: refused, and nothing stored."""
    async def scenario(client: RequestorAppClient) -> None:
        status, message = await _status(client.next_subtask("t", "s1", "n" * MiB))
        assert status is Status.INVALID_ARGUMENT and "opaque_node_id" in message
        assert len(message) <= bounds.MAX_STATUS_MESSAGE_CHARS
        assert await client.next_subtask("t", "s2", "n" * bounds.MAX_NODE_ID_BYTES) is not None
        state = (tmp_path / "t" / "state.json").read_text()
        assert "s1" not in state and len(state) < 4 * bounds.MAX_NODE_ID_BYTES

    _requestor(tmp_path, scenario)


@pytest.mark.timeout(60)
def test_deep_json_malformed_protobuf_and_files_as_ids(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a task")

    async def scenario(client: RequestorAppClient) -> None:
        stub = client._stub
        for text in ("[" * 100_000, '{"a":' * 50_000, "[" * 50 + "]" * 50):
            status, message = await _status(stub.CreateTask(pb.CreateTaskRequest(
                task_id="deep", max_subtasks_count=1,
                task_params_json='{"x": ' + text + "}" if text[0] == "[" else text)))
            assert status is Status.INVALID_ARGUMENT, message
            assert "deep" in message or "JSON" in message
        assert not (tmp_path / "deep").exists()
        for garbage in (b"\xff\xff\xff\xff", b"\x0a\x02\xff\xfe", b"\x0a\x10ab"):
            method = UnaryUnaryMethod(
                stub.HasPendingSubtasks.channel, "/golem_task_api.RequestorApp/HasPendingSubtasks",
                _RawBytes, pb.HasPendingSubtasksReply)
            status, message = await _status(method(_RawBytes(garbage)))
            assert status is Status.INVALID_ARGUMENT, (garbage, message)
        # A task id naming a file that is not a task dir.
        status, _ = await _status(client.create_task("afile", 1, {}))
        assert status is Status.INVALID_ARGUMENT
        assert (tmp_path / "afile").read_text() == "not a task"
        status, _ = await _status(client.next_subtask("afile", "s", "node"))
        assert status is Status.NOT_FOUND

    _requestor(tmp_path, scenario)


@pytest.mark.timeout(60)
def test_a_refused_create_task_leaves_no_task_dir(tmp_path: Path) -> None:
    async def scenario(client: RequestorAppClient) -> None:
        status, _ = await _status(client.create_task("refused", 0, {}))  # the app refuses
        assert status is Status.INVALID_ARGUMENT
        assert not (tmp_path / "refused").exists()
        # A dir the node made before CreateTask stays, whatever the app said.
        (tmp_path / "nodes").mkdir()
        (tmp_path / "nodes" / "task_inputs").mkdir()
        await _status(client.create_task("nodes", 0, {}))
        assert (tmp_path / "nodes" / "task_inputs").is_dir()

    _requestor(tmp_path, scenario)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("request_", [
    pb.ComputeRequest(task_id="t", subtask_id="s" * (256 * 1024), subtask_params_json="{}"),
    pb.ComputeRequest(task_id="t", subtask_id="s", subtask_params_json="[" * 100_000),
], ids=["long-subtask-id", "deep-json"])
def test_the_provider_refuses_bad_computes_at_once(tmp_path: Path, request_: pb.ComputeRequest) -> None:
    async def scenario() -> None:
        (tmp_path / "subtask_inputs").mkdir()
        service = InlineTaskApiService(tmp_path, provider_handler=FakeProviderHandler())
        client = await ProviderAppClient.create(service, find_free_port())
        try:
            started = time.perf_counter()
            status, message = await _status(client._stub.Compute(request_))
            assert status is Status.INVALID_ARGUMENT, message
            assert time.perf_counter() - started < 0.5
            assert len(message) <= bounds.MAX_STATUS_MESSAGE_CHARS
            # The one request per process was used: the provider ends cleanly.
            await asyncio.wait_for(service.wait_until_shutdown_complete(), 10)
            assert service.returncode == 0
        finally:
            await client.shutdown()

    asyncio.run(scenario())


@pytest.mark.parametrize(("exc", "status"), [
    (OSError(errno.ENOSPC, "No space left on device"), Status.RESOURCE_EXHAUSTED),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), Status.RESOURCE_EXHAUSTED),
    (OSError(errno.ENAMETOOLONG, "File name too long"), Status.INVALID_ARGUMENT),
    (FileNotFoundError(errno.ENOENT, "No such file or directory"), Status.NOT_FOUND),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory"), Status.INVALID_ARGUMENT),
    (MemoryError(), Status.RESOURCE_EXHAUSTED),
    (RecursionError("maximum recursion depth exceeded"), Status.INTERNAL),
    (OSError(errno.EIO, "Input/output error"), Status.INTERNAL),
])
def test_os_errors_map_to_client_statuses(exc: BaseException, status: Status) -> None:
    assert status_for(exc) is status


def test_status_messages_are_short_and_free_of_server_paths() -> None:
    exc = OSError(errno.ENAMETOOLONG, "File name too long", "/srv/golem/work/" + "x" * 300)
    message = client_message(exc)
    assert "/srv" not in message and "File name too long" in message
    assert len(message) <= bounds.MAX_STATUS_MESSAGE_CHARS
    message = client_message(RuntimeError("cannot open '/home/app/work/t/state.json': gone"))
    assert "/home" not in message and "state.json" in message
    assert len(client_message(ValueError("v" * 10 * MiB))) <= bounds.MAX_STATUS_MESSAGE_CHARS


def test_id_rules() -> None:
    assert bounds.check_id("a" * bounds.MAX_ID_BYTES, "task_id")
    for bad in ("", ".", "..", "a/b", "a\\b", "a\0b", "é" * (bounds.MAX_ID_BYTES // 2 + 1)):
        with pytest.raises(bounds.InvalidArgumentError):
            bounds.check_id(bad, "task_id")
