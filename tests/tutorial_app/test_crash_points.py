"""Fault injection: the requestor killed before and after every mutation of a task's life.

A scenario is a whole task played by a node: create, assign, verify (good
and bad results), discard, abort subtask, re-assign, abort task. A first
run in a child process records every mutation point it passes: each store
commit (before and after, `tutorial_app.store.crash_point`), each file the
requestor creates, replaces or unlinks (its own points, plus every
``os.open(O_CREAT)`` and ``os.replace`` the child makes). Then, for each
point, a fresh child replays the scenario and SIGKILLs itself exactly
there; this process restarts on the same work dir as the node would
(retrying the interrupted call with the same arguments, then carrying on)
and checks the invariants:

- the interrupted call's retry and every later call answer as in the
  uninterrupted run, and the task ends in the same state (so nothing
  verified is lost and no part is counted twice);
- task_outputs/ holds exactly the verified results, byte for byte;
- subtask_inputs/ holds exactly the inputs of handed-out subtasks;
- no temp file remains and the database is intact.

Children are forked (no interpreter start-up per point) and the task dirs
live on tmpfs when there is one: a SIGKILL loses nothing fsync protects
against (that is a power cut), so the harness need not wait for the disk.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import traceback
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from golem_task_api.enums import VerifyResult

from app_testing import make_task_dir, subtask_input_text, write_result
from tutorial_app import requestor, store
from tutorial_app.store import CRASH_POINT_ENV, DB_NAME, SubtaskState, TaskStore

PARTS = 3
PARAMS = {"difficulty": 0, "resources": ["input.txt"]}

Op = tuple[Any, ...]

SCENARIOS: dict[str, list[Op]] = {
    "whole task": [
        ("create",),
        ("assign", "a", "n1"), ("assign", "b", "n1"),
        ("verify", "a", "good"), ("verify", "b", "bad"),
        ("assign", "c", "n2"),          # b's part again
        ("discard", ["a"]),
        ("assign", "d", "n1"),          # a's part again
        ("abort_subtask", "c"),
        ("assign", "e", "n2"), ("assign", "f", "n1"),
        ("verify", "d", "good"), ("verify", "e", "good"), ("verify", "f", "good"),
        ("verify", "d", "good"),        # a repeated Verify
    ],
    "abort task": [
        ("create",),
        ("assign", "a", "n1"), ("verify", "a", "good"),
        ("assign", "b", "n2"), ("verify", "b", "bad"), ("assign", "c", "n1"),
        ("abort_task",),
    ],
}

_TEMP = re.compile(r"(^\..*\.tmp)|(\.tmp(-wal|-shm|-journal)?$)")


def _write_provider_result(task_dir: Path, sid: str, kind: str) -> None:
    """What the provider delivered; written once, as a real node copies it once."""
    if (task_dir / "subtask_outputs" / sid / f"{sid}.zip").exists():
        return
    text = subtask_input_text(task_dir, sid)
    # Difficulty 0: every digest meets the target, so nonce 0 is a solution.
    digest = hashlib.sha256(f"{text}0".encode()).hexdigest() if kind == "good" else "0" * 64
    write_result(task_dir, sid, {sid: f"{digest} 0".encode()})


def _run(task_dir: Path, op: Op) -> Any:
    """One node call; its answer in a comparable form."""
    name = op[0]
    if name == "create":
        task = requestor.create_task(task_dir, PARTS, dict(PARAMS))
        return (task.env_id, task.prerequisites)
    if name == "assign":
        subtask = requestor.next_subtask(task_dir, op[1], op[2])
        if subtask is None:
            return None
        return (subtask.params, subtask.resources, TaskStore.open(task_dir).subtask(op[1]).part)
    if name == "verify":
        _write_provider_result(task_dir, op[1], op[2])
        return requestor.verify(task_dir, op[1])[0].name
    if name == "discard":
        return requestor.discard_subtasks(task_dir, list(op[1]))
    if name == "abort_subtask":
        return requestor.abort_subtask(task_dir, op[1])
    if name == "abort_task":
        return requestor.abort_task(task_dir)
    raise AssertionError(f"unknown op {op}")


def _instrument_file_creation() -> None:
    """Make every file creation and rename of this (child) process a crash point too."""
    real_open, real_replace = os.open, os.replace

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if not flags & os.O_CREAT:
            return real_open(path, flags, *args, **kwargs)
        where = Path(os.fsdecode(path)).parent.name
        store.crash_point(f"os.open(O_CREAT) in {where}: before")
        fd = real_open(path, flags, *args, **kwargs)
        store.crash_point(f"os.open(O_CREAT) in {where}: after")
        return fd

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        where = Path(os.fsdecode(dst)).parent.name
        store.crash_point(f"os.replace into {where}: before")
        real_replace(src, dst, *args, **kwargs)
        store.crash_point(f"os.replace into {where}: after")

    os.open = open_  # type: ignore[assignment]
    os.replace = replace  # type: ignore[assignment]


@dataclass
class ChildRun:
    """What a child left: how it ended, and (uninterrupted) its trace and answers."""

    status: int
    report: dict[str, Any]


def _in_child(task_dir: Path, ops: list[Op], target: str, report: Path) -> ChildRun:
    """Replay ``ops`` in a forked child that dies at ``target`` (or records, if it never does)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        code = 0
        try:
            os.environ[CRASH_POINT_ENV] = target
            store._crash_trace.clear()
            _instrument_file_creation()
            op_starts, answers = [], []
            for op in ops:
                op_starts.append(len(store.crash_trace()))
                answers.append(_run(task_dir, op))
            report.write_text(json.dumps({
                "trace": store.crash_trace(), "op_starts": op_starts, "answers": answers}))
        except BaseException:  # noqa: BLE001 - reported to the parent
            os.write(write_end, traceback.format_exc().encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        error = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert not error, f"child failed at {target}:\n{error}"
    return ChildRun(status, json.loads(report.read_text()) if report.exists() else {})


def _complete(task_dir: Path) -> None:
    """Finish the task as a node would: while parts are pending, compute them."""
    for i in range(PARTS * 2):
        if not requestor.has_pending_subtasks(task_dir):
            return
        sid = f"z{i}"
        assert requestor.next_subtask(task_dir, sid, "finisher") is not None
        _write_provider_result(task_dir, sid, "good")
        assert requestor.verify(task_dir, sid)[0] is VerifyResult.SUCCESS
    raise AssertionError("the task never completed")


def _final_state(task_dir: Path) -> dict[str, Any]:
    """The task's observable outcome, checked against the invariants."""
    task_store = TaskStore.open(task_dir)
    subtasks = task_store.subtasks()
    verified = {s.subtask_id: s.part for s in subtasks if s.state is SubtaskState.VERIFIED}
    # No part counted twice, none lost (unless the task was aborted).
    assert len(set(verified.values())) == len(verified), f"a part verified twice: {verified}"
    if not task_store.task().aborted:
        assert sorted(verified.values()) == list(range(PARTS))
    # task_outputs/ is exactly the verified results, byte for byte.
    outputs = {p.name: p.read_bytes() for p in (task_dir / "task_outputs").iterdir()}
    assert set(outputs) == {f"{sid}.zip" for sid in verified}
    for sid in verified:
        delivered = (task_dir / "subtask_outputs" / sid / f"{sid}.zip").read_bytes()
        assert outputs[f"{sid}.zip"] == delivered
        with zipfile.ZipFile(task_dir / "task_outputs" / f"{sid}.zip") as zf:
            assert zf.namelist() == [sid]
    # subtask_inputs/ is exactly the inputs of the subtasks handed out.
    inputs = {p.name for p in (task_dir / "subtask_inputs").iterdir()}
    assert inputs == {f"{s.subtask_id}.zip" for s in subtasks}
    # No temp file anywhere.
    temps = [str(p.relative_to(task_dir)) for p in task_dir.rglob("*") if _TEMP.search(p.name)]
    assert temps == []
    conn = sqlite3.connect(task_dir / DB_NAME)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    return {"subtasks": [(s.subtask_id, s.part, s.node, s.state.value) for s in subtasks
                         if not s.subtask_id.startswith("z")],
            "finishers": sorted(s.part for s in subtasks if s.subtask_id.startswith("z"))}


def _restart_and_finish(task_dir: Path, ops: list[Op], killed_op: int,
                        expected: list[Any]) -> None:
    """The node after the requestor's restart: retry the interrupted call, carry on, finish."""
    requestor._forget_swept()
    for index in range(killed_op, len(ops)):
        answer = json.loads(json.dumps(_run(task_dir, ops[index])))
        if index == killed_op and ops[index][0] == "discard":
            # Discarding again what a committed first try discarded reports nothing new.
            assert answer in (expected[index], []), (ops[index], answer)
        else:
            assert answer == expected[index], (ops[index], answer, expected[index])
    _complete(task_dir)


@pytest.fixture
def work_dir(tmp_path: Path) -> Iterator[Path]:
    """A scratch dir on tmpfs (fast fsync) if the machine has one, else ``tmp_path``."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="crash-points-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_kill_at_every_mutation_point_then_restart(work_dir: Path, scenario: str) -> None:
    tmp_path = work_dir
    ops = SCENARIOS[scenario]
    clean_dir = make_task_dir(tmp_path / "clean", "task")
    clean = _in_child(clean_dir, ops, "record", tmp_path / "clean.json")
    assert os.waitstatus_to_exitcode(clean.status) == 0
    trace: list[str] = clean.report["trace"]
    op_starts: list[int] = clean.report["op_starts"]
    expected: list[Any] = clean.report["answers"]
    _complete(clean_dir)
    reference = _final_state(clean_dir)

    points = []
    seen: dict[str, int] = {}
    for position, name in enumerate(trace):
        seen[name] = seen.get(name, 0) + 1
        killed_op = max(i for i, start in enumerate(op_starts) if start <= position)
        points.append((f"{name}#{seen[name]}", killed_op))
    kinds = {name for name in trace}
    assert any("before commit" in k for k in kinds) and any("after commit" in k for k in kinds)
    assert any("os.replace into task_outputs" in k for k in kinds)
    assert any("unlink task_outputs" in k for k in kinds)

    broken = []
    for n, (point, killed_op) in enumerate(points):
        task_dir = make_task_dir(tmp_path / f"p{n}", "task")
        run = _in_child(task_dir, ops, point, tmp_path / f"p{n}.json")
        assert os.WIFSIGNALED(run.status) and os.WTERMSIG(run.status) == signal.SIGKILL, point
        try:
            _restart_and_finish(task_dir, ops, killed_op, expected)
            assert _final_state(task_dir) == reference
        except AssertionError as exc:
            broken.append(f"{point} (in {ops[killed_op]}): {exc}")
    print(f"\n{scenario}: killed at {len(points)} mutation points, {len(broken)} broken",
          file=sys.stderr)
    assert broken == [], "\n".join(broken)
    assert len(points) >= 20


def test_crash_points_cost_nothing_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CRASH_POINT_ENV, raising=False)
    before = store.crash_trace()
    store.crash_point("anything: before commit")
    assert store.crash_trace() == before
