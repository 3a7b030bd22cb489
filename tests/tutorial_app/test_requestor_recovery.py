"""Requestor retries and restarts: idempotent calls, file effects ordered around commits,
temp files swept, a read-only HasPendingSubtasks, results named after their subtask."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from golem_task_api.dirutils import RequestorDir
from golem_task_api.enums import VerifyResult
from golem_task_api.errors import AlreadyExistsError

from app_testing import make_task_dir, snapshot, solve, subtask_input_text, write_result
from tutorial_app import requestor
from tutorial_app.store import DB_NAME, SubtaskState, TaskStore

DIFFICULTY = 3
PARAMS = {"difficulty": DIFFICULTY, "resources": ["input.txt"]}
HERE = Path(__file__).parent


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    task_dir = make_task_dir(tmp_path, "task-1")
    requestor.create_task(task_dir, 2, dict(PARAMS))
    return task_dir


def _good_result(task_dir: Path, sid: str, member: str | None = None) -> None:
    digest, nonce = solve(subtask_input_text(task_dir, sid), DIFFICULTY)
    write_result(task_dir, sid, {member or sid: f"{digest} {nonce}".encode()})


def test_task_dir_may_be_a_requestor_task_dir(tmp_path: Path) -> None:
    """The runtime passes RequestorTaskDir objects (a Path subclass): all calls take them."""
    plain = make_task_dir(tmp_path, "t")
    task_dir = RequestorDir(tmp_path).task_dir("t")
    assert task_dir == plain and type(task_dir) is not type(plain)
    requestor.create_task(task_dir, 1, dict(PARAMS))
    assert requestor.next_subtask(task_dir, "a", "n") is not None
    _good_result(plain, "a")
    assert requestor.verify(task_dir, "a") == (VerifyResult.SUCCESS, None)
    assert not requestor.has_pending_subtasks(task_dir)
    assert requestor.discard_subtasks(task_dir, ["a"]) == ["a"]
    requestor.abort_task(task_dir)
    assert list((plain / "task_outputs").iterdir()) == []


# -- idempotent retries ------------------------------------------------------

def test_next_subtask_retry_from_same_node_answers_as_the_first_call(task_dir: Path) -> None:
    first = requestor.next_subtask(task_dir, "a", "node-1")
    text = subtask_input_text(task_dir, "a")
    again = requestor.next_subtask(task_dir, "a", "node-1")
    assert again == first
    assert subtask_input_text(task_dir, "a") == text
    # The retry took no second part.
    assert requestor.next_subtask(task_dir, "b", "node-1") is not None
    assert requestor.next_subtask(task_dir, "c", "node-1") is None


def test_next_subtask_retry_rewrites_a_lost_input_zip(task_dir: Path) -> None:
    first = requestor.next_subtask(task_dir, "a", "node-1")
    text = subtask_input_text(task_dir, "a")
    (task_dir / "subtask_inputs" / "a.zip").unlink()
    assert requestor.next_subtask(task_dir, "a", "node-1") == first
    assert subtask_input_text(task_dir, "a") == text


def test_same_subtask_id_from_another_node_is_still_already_exists(task_dir: Path) -> None:
    requestor.next_subtask(task_dir, "a", "node-1")
    before = snapshot(task_dir)
    with pytest.raises(AlreadyExistsError):
        requestor.next_subtask(task_dir, "a", "node-2")
    assert snapshot(task_dir) == before


def test_create_task_retry_with_same_params_answers_as_the_first(tmp_path: Path) -> None:
    task_dir = make_task_dir(tmp_path, "t")
    first = requestor.create_task(task_dir, 2, dict(PARAMS))
    requestor.next_subtask(task_dir, "a", "n")
    before = snapshot(task_dir)
    assert requestor.create_task(task_dir, 2, dict(PARAMS)) == first
    assert snapshot(task_dir) == before
    for max_count, params in [(3, PARAMS), (2, {**PARAMS, "difficulty": DIFFICULTY + 1})]:
        with pytest.raises(AlreadyExistsError):
            requestor.create_task(task_dir, max_count, dict(params))
    assert snapshot(task_dir) == before


# -- delete after commit -----------------------------------------------------

_KILL_AT_FIRST_UNLINK = """
import os, signal, sys
from pathlib import Path
from tutorial_app import requestor
real = Path.unlink
def unlink_then_die(self, *args, **kwargs):
    if self.parent.name == "task_outputs":
        real(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, *args, **kwargs)
Path.unlink = unlink_then_die
getattr(requestor, sys.argv[1])(Path(sys.argv[2]), *sys.argv[3:])
"""


@pytest.mark.parametrize("call", ["discard", "abort_subtask", "abort_task"])
def test_kill_right_after_removing_a_result_loses_no_verified_result(
    task_dir: Path, call: str,
) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    _good_result(task_dir, "a")
    if call == "discard":
        assert requestor.verify(task_dir, "a")[0] is VerifyResult.SUCCESS
        args = ["discard_subtasks", str(task_dir), "a"]
    else:
        # A Verify that died before its commit left a.zip in task_outputs.
        requestor.write_atomically(task_dir / "task_outputs" / "a.zip", b"stale")
        args = [call, str(task_dir)] + (["a"] if call == "abort_subtask" else [])
    if call == "discard":
        script = _KILL_AT_FIRST_UNLINK.replace(
            "getattr(requestor, sys.argv[1])(Path(sys.argv[2]), *sys.argv[3:])",
            "requestor.discard_subtasks(Path(sys.argv[2]), sys.argv[3:])")
    else:
        script = _KILL_AT_FIRST_UNLINK
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=HERE,
                          capture_output=True, timeout=30)
    assert done.returncode == -9, done.stderr.decode()
    # Restarted: whatever the store says is verified has its result in task_outputs.
    requestor._forget_swept()
    requestor.has_pending_subtasks(task_dir)
    requestor.next_subtask(task_dir, "probe", "n")
    verified = {s.subtask_id for s in TaskStore.open(task_dir).subtasks()
                if s.state is SubtaskState.VERIFIED}
    outputs = {p.name for p in (task_dir / "task_outputs").iterdir()}
    assert outputs == {f"{s}.zip" for s in verified}


# -- temp files of killed calls are swept ------------------------------------

def test_temp_files_of_killed_calls_are_removed_on_restart(task_dir: Path) -> None:
    leftovers = [
        task_dir / f".{DB_NAME}.0123abcd.tmp", task_dir / f".{DB_NAME}.0123abcd.tmp-wal",
        task_dir / ".tutorial_app.sqlite3.9f9f.tmp", task_dir / ".tutorial_app.sqlite3.9f9f.tmp-shm",
        task_dir / "subtask_inputs" / ".a.zip.x1y2.tmp",
        task_dir / ".b.zip.k3j4.tmp",
        task_dir / "task_outputs" / ".c.zip.q5r6.tmp",
    ]
    for path in leftovers:
        path.write_bytes(b"partial")
    keep = task_dir / "task_inputs" / ".hidden.tmp"  # the node's, not ours
    keep.write_bytes(b"node's")
    requestor._forget_swept()
    requestor.next_subtask(task_dir, "a", "n")
    assert [p for p in leftovers if p.exists()] == []
    assert keep.exists()


def test_orphans_of_uncommitted_calls_are_removed_on_restart(task_dir: Path) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    # An input written by a NextSubtask that died before its commit,
    # and a result merged by a Verify that died before its commit.
    (task_dir / "subtask_inputs" / "ghost.zip").write_bytes(b"x")
    (task_dir / "task_outputs" / "a.zip").write_bytes(b"x")
    requestor._forget_swept()
    assert requestor.next_subtask(task_dir, "b", "n") is not None
    assert sorted(p.name for p in (task_dir / "subtask_inputs").iterdir()) == ["a.zip", "b.zip"]
    assert list((task_dir / "task_outputs").iterdir()) == []


# -- HasPendingSubtasks is a read --------------------------------------------

@pytest.fixture
def traced_sql(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement the store's connections run (whatever opens them)."""
    statements: list[str] = []
    real = sqlite3.connect

    def connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = real(*args, **kwargs)  # type: ignore[arg-type]
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    yield statements


def test_has_pending_does_not_load_the_input_text(task_dir: Path, traced_sql: list[str]) -> None:
    # A fresh thread opens its own (traced) connection.
    answers: list[bool] = []
    reader = threading.Thread(target=lambda: answers.append(requestor.has_pending_subtasks(task_dir)))
    reader.start()
    reader.join(30)
    assert answers == [True]
    assert traced_sql, "no SQL seen"
    assert not [s for s in traced_sql if "input_text" in s or "SELECT *" in s.upper()]
    assert not [s for s in traced_sql if "IMMEDIATE" in s.upper() or "EXCLUSIVE" in s.upper()]


def test_has_pending_answers_while_another_writer_holds_the_lock(task_dir: Path) -> None:
    writer = sqlite3.connect(task_dir / DB_NAME, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    answers: list[bool] = []
    try:
        reader = threading.Thread(
            target=lambda: answers.append(requestor.has_pending_subtasks(task_dir)), daemon=True)
        reader.start()
        reader.join(5)
        assert answers == [True], "HasPendingSubtasks waited for the write lock"
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        reader.join(60)


# -- a result is one member named after its subtask --------------------------

@pytest.mark.parametrize("member", ["../../tmp/evil", "result.txt", "a/", "A"])
def test_result_member_not_named_after_the_subtask_fails(task_dir: Path, member: str) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    _good_result(task_dir, "a", member=member)
    result, reason = requestor.verify(task_dir, "a")
    assert result is VerifyResult.FAILURE
    assert f"holds {member!r}; expected one file named 'a'" in reason
    assert list((task_dir / "task_outputs").iterdir()) == []


def test_result_member_named_after_the_subtask_passes(task_dir: Path) -> None:
    requestor.next_subtask(task_dir, "a", "n")
    _good_result(task_dir, "a")
    with zipfile.ZipFile(task_dir / "subtask_outputs" / "a" / "a.zip") as zf:
        assert zf.namelist() == ["a"]
    assert requestor.verify(task_dir, "a") == (VerifyResult.SUCCESS, None)


# -- several requestor processes on one task ---------------------------------

_NODE = """
import sys
from pathlib import Path
from tutorial_app import requestor
task_dir, k = Path(sys.argv[1]), sys.argv[2]
for i in range(12):
    requestor.next_subtask(task_dir, f"p{k}-{i}", f"node{k}")
"""


@pytest.mark.timeout(60)
def test_processes_racing_for_parts_never_share_one(tmp_path: Path) -> None:
    task_dir = make_task_dir(tmp_path, "t")
    requestor.create_task(task_dir, 24, {"difficulty": 1, "resources": ["input.txt"]})
    procs = [subprocess.Popen([sys.executable, "-c", _NODE, str(task_dir), str(k)], cwd=HERE)
             for k in range(3)]
    for proc in procs:
        assert proc.wait(timeout=50) == 0
    subtasks = TaskStore.open(task_dir).subtasks()
    parts = [s.part for s in subtasks]
    assert sorted(parts) == list(range(24))
    texts = {subtask_input_text(task_dir, s.subtask_id) for s in subtasks}
    assert len(texts) == 24
    assert not requestor.has_pending_subtasks(task_dir)
