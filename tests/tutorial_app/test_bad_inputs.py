"""Every bad input of the issue over gRPC: a clear error or FAILURE reason, the
server keeps serving, and the stored state is unchanged. Also concurrent calls,
which must never hand one part to two subtasks.

One requestor server per mode serves the whole module (each test makes its
own task), driven from a loop thread so the tests themselves stay plain.
"""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from golem_task_api.enums import VerifyResult
from golem_task_api.testutils import TaskLifecycleUtil
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from app_testing import (
    INPUT_TEXT, MODES, LoopThread, miss, requestor_factory, snapshot, solve, subtask_input_text,
    write_result,
)

T = TypeVar("T")
DIFFICULTY = 6
GOOD = {"difficulty": DIFFICULTY, "resources": ["input.txt"]}


@dataclass
class Node:
    """A requestor server shared by a module, with a task that stays untouched."""

    loop: LoopThread
    util: TaskLifecycleUtil
    input_file: Path
    witness_task: str

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a client call on the module's loop."""
        return self.loop.run(coro)

    def new_task(self, count: int = 2) -> str:
        """A fresh valid task; becomes the util's current task."""
        return self.run(self.util.start_task(count, dict(GOOD), [self.input_file]))

    def task_dir(self, task_id: str) -> Path:
        """The requestor's dir of ``task_id``."""
        return Path(self.util.requestor_dir.task_dir(task_id))

    def assert_serving(self) -> None:
        """The server still answers, and the witness task is as it was."""
        assert self.run(self.util.requestor.has_pending_subtasks(self.witness_task)) is True

    def rejected(self, coro: Coroutine[Any, Any, object], status: Status, words: str) -> GRPCError:
        """The call fails with ``status`` and a message holding ``words``; the server still serves."""
        with pytest.raises(GRPCError) as info:
            self.run(coro)
        assert info.value.status is status, info.value
        assert words.lower() in (info.value.message or "").lower(), info.value.message
        self.assert_serving()
        return info.value


@pytest.fixture(scope="module", params=MODES)
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    work = tmp_path_factory.mktemp(f"bad-{request.param}")
    input_file = work / "input.txt"
    input_file.write_text(INPUT_TEXT, encoding="utf-8")
    loop = LoopThread()
    util = TaskLifecycleUtil(work)
    try:
        loop.run(util.init_requestor(requestor_factory(request.param)))
        witness = loop.run(util.start_task(1, dict(GOOD), [input_file]))
        yield Node(loop, util, input_file, witness)
    finally:
        loop.run(util.shutdown())
        loop.close()


def _prepared(node: Node, files: dict[str, bytes | None]) -> str:
    """A task dir laid out by the node with the given task_inputs (None = a directory)."""
    task_id = uuid.uuid4().hex
    task_dir = node.util.requestor_dir.task_dir(task_id)
    task_dir.prepare()
    for name, data in files.items():
        if data is None:
            (task_dir.task_inputs_dir / name).mkdir()
        else:
            (task_dir.task_inputs_dir / name).write_bytes(data)
    return task_id


BAD_PARAMS = {
    "missing difficulty": ({"resources": ["input.txt"]}, "difficulty is required"),
    "negative difficulty": ({"difficulty": -1, "resources": ["input.txt"]}, "out of range"),
    "too large difficulty": ({"difficulty": 257, "resources": ["input.txt"]}, "out of range"),
    "string difficulty": ({"difficulty": "8", "resources": ["input.txt"]}, "must be an integer"),
    "float difficulty": ({"difficulty": 8.5, "resources": ["input.txt"]}, "must be an integer"),
    "bool difficulty": ({"difficulty": True, "resources": ["input.txt"]}, "must be an integer"),
    "subtasks_count 0": ({"difficulty": 4, "subtasks_count": 0, "resources": ["input.txt"]}, "out of range"),
    "subtasks_count above max": ({"difficulty": 4, "subtasks_count": 3, "resources": ["input.txt"]}, "out of range"),
    "no resources": ({"difficulty": 4}, "resources is required"),
    "empty resources": ({"difficulty": 4, "resources": []}, "exactly one"),
    "absent resource": ({"difficulty": 4, "resources": ["nope.txt"]}, "is not in task_inputs"),
    "directory resource": ({"difficulty": 4, "resources": ["adir"]}, "is a directory"),
    "not utf-8 resource": ({"difficulty": 4, "resources": ["latin.txt"]}, "not UTF-8"),
    "escaping resource": ({"difficulty": 4, "resources": ["../input.txt"]}, "plain file name"),
    "absolute resource": ({"difficulty": 4, "resources": ["/etc/hostname"]}, "plain file name"),
}


@pytest.mark.parametrize("case", list(BAD_PARAMS))
def test_bad_task_params(node: Node, case: str) -> None:
    params, words = BAD_PARAMS[case]
    task_id = _prepared(node, {"input.txt": INPUT_TEXT.encode(), "adir": None, "latin.txt": b"caf\xe9"})
    before = snapshot(node.task_dir(task_id))
    node.rejected(node.util.requestor.create_task(task_id, 2, params), Status.INVALID_ARGUMENT, words)
    assert snapshot(node.task_dir(task_id)) == before
    # The same task id can still be created with good params.
    node.run(node.util.requestor.create_task(task_id, 3, dict(GOOD)))


def test_create_task_twice(node: Node) -> None:
    task_id = node.new_task()
    before = snapshot(node.task_dir(task_id))
    node.rejected(node.util.requestor.create_task(task_id, 3, dict(GOOD)),
                  Status.ALREADY_EXISTS, "already created")
    assert snapshot(node.task_dir(task_id)) == before


@pytest.mark.parametrize("call", ["next_subtask", "verify", "discard", "has_pending", "abort_task", "abort_subtask"])
@pytest.mark.parametrize("where", ["no task dir", "dir but no CreateTask"])
def test_unknown_task_id(node: Node, call: str, where: str) -> None:
    task_id = uuid.uuid4().hex if where == "no task dir" else _prepared(node, {"input.txt": b"x"})
    client = node.util.requestor
    coro = {
        "next_subtask": lambda: client.next_subtask(task_id, "s", "n"),
        "verify": lambda: client.verify(task_id, "s"),
        "discard": lambda: client.discard_subtasks(task_id, ["s"]),
        "has_pending": lambda: client.has_pending_subtasks(task_id),
        "abort_task": lambda: client.abort_task(task_id),
        "abort_subtask": lambda: client.abort_subtask(task_id, "s"),
    }[call]()
    node.rejected(coro, Status.NOT_FOUND, "")
    assert not (node.util.requestor_dir / task_id / "tutorial_app.sqlite3").exists()


@pytest.mark.parametrize("call", ["verify", "discard", "abort_subtask"])
def test_unknown_subtask_id(node: Node, call: str) -> None:
    task_id = node.new_task()
    node.run(node.util.get_next_subtask(subtask_id="known"))
    before = snapshot(node.task_dir(task_id))
    client = node.util.requestor
    coro = {
        "verify": lambda: client.verify(task_id, "unknown"),
        "discard": lambda: client.discard_subtasks(task_id, ["known", "unknown"]),
        "abort_subtask": lambda: client.abort_subtask(task_id, "unknown"),
    }[call]()
    node.rejected(coro, Status.NOT_FOUND, "unknown")
    assert snapshot(node.task_dir(task_id)) == before


def test_repeated_subtask_id(node: Node) -> None:
    task_id = node.new_task()
    node.run(node.util.get_next_subtask(subtask_id="twice"))
    before = snapshot(node.task_dir(task_id))
    node.rejected(node.util.requestor.next_subtask(task_id, "twice", "other-node"),
                  Status.ALREADY_EXISTS, "already handed out")
    assert snapshot(node.task_dir(task_id)) == before


@pytest.mark.parametrize("sid", ["../x", "a/b", ".."])
def test_unsafe_subtask_id(node: Node, sid: str) -> None:
    task_id = node.new_task()
    before = snapshot(node.task_dir(task_id))
    node.rejected(node.util.requestor.next_subtask(task_id, sid, "n"), Status.INVALID_ARGUMENT, "")
    assert snapshot(node.task_dir(task_id)) == before


def test_verify_before_any_result(node: Node) -> None:
    task_id = node.new_task()
    node.run(node.util.get_next_subtask(subtask_id="early"))
    before = snapshot(node.task_dir(task_id))
    result, reason = node.run(node.util.verify("early"))
    assert result is VerifyResult.AWAITING_DATA and "no result file" in reason
    assert snapshot(node.task_dir(task_id)) == before
    node.assert_serving()


def _bad_result(case: str, text: str, sid: str) -> tuple[bytes | dict[str, bytes], str]:
    good_digest, good_nonce = solve(text, DIFFICULTY)
    missed_digest, missed_nonce = miss(text, DIFFICULTY)
    return {
        "not a zip": (b"PK but not really a zip", "not a ZIP"),
        "empty zip": ({}, "no file"),
        "two members": ({sid: f"{good_digest} {good_nonce}".encode(), "b": b"x"}, "2 files"),
        "huge unpacked": ({sid: b"0" * 50_000_000}, "limit"),
        "not digest nonce": ({sid: b"the answer is 42"}, "is not '<64 hex digits>"),
        "forged digest": ({sid: f"{'0' * 64} {good_nonce}".encode()}, "digest mismatch"),
        "digest misses target": ({sid: f"{missed_digest} {missed_nonce}".encode()}, "misses the target"),
    }[case]


@pytest.mark.parametrize("case", [
    "not a zip", "empty zip", "two members", "huge unpacked", "not digest nonce",
    "forged digest", "digest misses target",
])
def test_bad_result_fails_with_reason(node: Node, case: str) -> None:
    task_id = node.new_task(count=1)
    sid, _ = node.run(node.util.get_next_subtask())
    task_dir = node.task_dir(task_id)
    content, words = _bad_result(case, subtask_input_text(task_dir, sid), sid)
    path = write_result(task_dir, sid, content)
    if case == "huge unpacked":
        assert path.stat().st_size < 1_000_000
    result, reason = node.run(node.util.verify(sid))
    assert result is VerifyResult.FAILURE
    assert words.lower() in reason.lower(), reason
    node.assert_serving()
    # Nothing merged; the part is computable again.
    assert list((task_dir / "task_outputs").iterdir()) == []
    assert node.run(node.util.requestor.has_pending_subtasks(task_id)) is True
    # Asking again gives FAILURE and changes nothing more.
    before = snapshot(task_dir)
    assert node.run(node.util.verify(sid))[0] is VerifyResult.FAILURE
    assert snapshot(task_dir) == before


def test_result_for_discarded_subtask(node: Node) -> None:
    task_id = node.new_task(count=1)
    sid, _ = node.run(node.util.get_next_subtask())
    task_dir = node.task_dir(task_id)
    assert node.run(node.util.requestor.discard_subtasks(task_id, [sid])) == [sid]
    digest, nonce = solve(subtask_input_text(task_dir, sid), DIFFICULTY)
    write_result(task_dir, sid, {sid: f"{digest} {nonce}".encode()})
    before = snapshot(task_dir)
    result, reason = node.run(node.util.verify(sid))
    assert result is VerifyResult.FAILURE and "discarded" in reason
    assert snapshot(task_dir) == before
    node.assert_serving()


def test_after_abort_task_nothing_is_pending(node: Node) -> None:
    task_id = node.new_task(count=2)
    sid, _ = node.run(node.util.get_next_subtask())
    node.run(node.util.requestor.abort_task(task_id))
    assert node.run(node.util.requestor.has_pending_subtasks(task_id)) is False
    assert node.run(node.util.get_next_subtask())[1] is None
    task_dir = node.task_dir(task_id)
    digest, nonce = solve(subtask_input_text(task_dir, sid), DIFFICULTY)
    write_result(task_dir, sid, {sid: f"{digest} {nonce}".encode()})
    result, reason = node.run(node.util.verify(sid))
    assert result is VerifyResult.FAILURE and "aborted" in reason
    assert list((task_dir / "task_outputs").iterdir()) == []
    node.assert_serving()



def test_concurrent_next_subtask_never_shares_a_part(node: Node) -> None:
    task_id = node.new_task(count=5)
    client = node.util.requestor

    async def burst() -> list:
        return await asyncio.gather(*(
            client.next_subtask(task_id, f"c{i}", f"node{i % 3}") for i in range(12)))

    replies = node.run(burst())
    given = [f"c{i}" for i, reply in enumerate(replies) if reply is not None]
    assert len(given) == 5
    texts = {subtask_input_text(node.task_dir(task_id), sid) for sid in given}
    assert len(texts) == 5
    assert node.run(client.has_pending_subtasks(task_id)) is False


def test_oversized_result_file_fails_without_being_merged(node: Node) -> None:
    """A result file padded far beyond any real result is refused before it is unpacked."""
    task_id = node.new_task(count=1)
    sid, _ = node.run(node.util.get_next_subtask())
    task_dir = node.task_dir(task_id)
    digest, nonce = solve(subtask_input_text(task_dir, sid), DIFFICULTY)
    path = write_result(task_dir, sid, {sid: f"{digest} {nonce}".encode()})
    # Junk in front of a valid ZIP still reads as a ZIP; only the size gives it away.
    path.write_bytes(b"\0" * 200_000 + path.read_bytes())
    result, reason = node.run(node.util.verify(sid))
    assert result is VerifyResult.FAILURE and "larger than" in reason
    assert list((task_dir / "task_outputs").iterdir()) == []
    node.assert_serving()
