"""Handler exceptions and bad requests become gRPC statuses; the server keeps serving."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from golem_task_api.client import RequestorAppClient
from golem_task_api.dirutils import RequestorDir
from golem_task_api.errors import AlreadyExistsError, FailedPreconditionError, NotFoundError
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.server import status_for
from golem_task_api.testutils import InlineTaskApiService, find_free_port

from gta_fakes import FakeRequestorHandler


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (NotFoundError("x"), Status.NOT_FOUND),
        (AlreadyExistsError("x"), Status.ALREADY_EXISTS),
        (FailedPreconditionError("x"), Status.FAILED_PRECONDITION),
        (ValueError("x"), Status.INVALID_ARGUMENT),
        (KeyError("x"), Status.INTERNAL),
        (RuntimeError("x"), Status.INTERNAL),
    ],
)
def test_status_for(exc: Exception, status: Status) -> None:
    assert status_for(exc) is status


async def _expect(status: Status, call: "asyncio.Future[object] | object") -> str:
    with pytest.raises(GRPCError) as raised:
        await call  # type: ignore[misc]
    assert raised.value.status is status, raised.value
    return raised.value.message or ""


@pytest.mark.timeout(90)
def test_errors_map_to_statuses_and_server_keeps_serving(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    async def scenario() -> None:
        service = InlineTaskApiService(tmp_path, requestor_handler=FakeRequestorHandler())
        client = await RequestorAppClient.create(service, find_free_port())
        try:
            RequestorDir(tmp_path).task_dir("t").prepare()
            await client.create_task("t", 5, {})

            assert "node id rejected" in await _expect(
                Status.INVALID_ARGUMENT, client.next_subtask("t", "s1", "raise-value"))
            assert "no such subtask" in await _expect(
                Status.NOT_FOUND, client.next_subtask("t", "s2", "raise-missing"))
            assert "handler crashed" in await _expect(
                Status.INTERNAL, client.next_subtask("t", "s3", "raise-runtime"))
            # Each failure above left the server serving.
            assert await client.next_subtask("t", "s4", "node") is not None

            # The server's own checks: unknown task, unsafe ids, bad JSON.
            for call in (
                client.has_pending_subtasks("missing"),
                client.verify("missing", "s4"),
                client.next_subtask("missing", "s5", "node"),
                client.discard_subtasks("missing", ["s4"]),
                client.abort_task("missing"),
                client.abort_subtask("missing", "s4"),
            ):
                assert "missing" in await _expect(Status.NOT_FOUND, call)
            for bad_id in ("", ".", "..", "a/b", "a\\b", "a\0b"):
                await _expect(Status.INVALID_ARGUMENT, client.has_pending_subtasks(bad_id))
                await _expect(Status.INVALID_ARGUMENT, client.next_subtask("t", bad_id, "node"))
                await _expect(Status.INVALID_ARGUMENT, client.create_task(bad_id, 1, {}))
            await _expect(Status.INVALID_ARGUMENT, client.discard_subtasks("t", ["ok", "../x"]))
            assert not (tmp_path.parent / "x").exists()
            await _expect(Status.INVALID_ARGUMENT, client._stub.CreateTask(
                pb.CreateTaskRequest(task_id="t2", max_subtasks_count=1, task_params_json="{")))
            await _expect(Status.INVALID_ARGUMENT, client._stub.CreateTask(
                pb.CreateTaskRequest(task_id="t2", max_subtasks_count=1, task_params_json="[]")))
            # A handler's own validation, and an unknown subtask in verify.
            await _expect(Status.INVALID_ARGUMENT, client.create_task("t3", 0, {}))
            await _expect(Status.NOT_FOUND, client.verify("t", "never-given"))

            assert await client.has_pending_subtasks("t") is True
        finally:
            await client.shutdown()
        assert service.exitcode == 0

    asyncio.run(scenario())
    err = capfd.readouterr().err
    # Logged once each: the INTERNAL failure with its traceback, the others as one line.
    assert err.count("RuntimeError: handler crashed") == 1
    assert err.count("node id rejected") == 1


class _NoteStream:
    """The server side of one call, recording the status sent."""

    def __init__(self, request: object) -> None:
        self.request = request
        self.status: object = None
        self.message: object = None

    async def recv_message(self) -> object:
        return self.request

    async def send_message(self, message: object) -> None:
        pass

    async def send_trailing_metadata(
        self, status: object = Status.OK, status_message: object = None
    ) -> None:
        self.status, self.message = status, status_message


class _BadVerifyResult(FakeRequestorHandler):
    async def verify(self, task_work_dir: Path, subtask_id: str) -> tuple:
        return "MAYBE", None


def test_a_handler_returning_a_bad_verify_result_is_internal_not_the_callers_fault(
    tmp_path: Path,
) -> None:
    from golem_task_api.handlers import AppLifecycleHandler
    from golem_task_api.server import RequestorApp

    class Lifecycle(AppLifecycleHandler):
        pass

    RequestorDir(tmp_path).task_dir("t").prepare()
    server = RequestorApp(tmp_path, _BadVerifyResult(), Lifecycle())
    stream = _NoteStream(pb.VerifyRequest(task_id="t", subtask_id="s"))
    asyncio.run(server.Verify(stream))  # type: ignore[arg-type]
    assert stream.status is Status.INTERNAL
    assert "MAYBE" in str(stream.message)
