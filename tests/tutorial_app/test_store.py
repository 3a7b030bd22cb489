"""The SQLite task store: states, atomic assignment, restart."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tutorial_app.store import (
    DB_NAME, Assignment, DuplicateSubtaskError, Outcome, PartState, SubtaskState,
    TaskExistsError, TaskNotCreatedError, TaskStore, UnknownSubtaskError, Verdict,
)


def _store(tmp_path: Path, parts: int = 3) -> TaskStore:
    return TaskStore.create(tmp_path, difficulty=5, resource="in.txt", input_text="hello",
                            salts=[f"s{i}" for i in range(parts)])


def _ok(_: Assignment) -> Verdict:
    return Verdict(Outcome.SUCCESS)


def test_create_writes_wal_database_with_pending_parts(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert [p.state for p in store.parts()] == [PartState.PENDING] * 3
    task = store.task()
    assert (task.difficulty, task.resource, task.input_text, task.aborted) == (5, "in.txt", "hello", False)
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == []


def test_create_twice_is_rejected_and_keeps_the_first(tmp_path: Path) -> None:
    _store(tmp_path)
    with pytest.raises(TaskExistsError):
        TaskStore.create(tmp_path, difficulty=9, resource="x", input_text="y", salts=["a"])
    assert TaskStore.open(tmp_path).task().difficulty == 5


def test_open_without_create(tmp_path: Path) -> None:
    with pytest.raises(TaskNotCreatedError):
        TaskStore.open(tmp_path)


def test_assign_gives_each_part_once_then_none(tmp_path: Path) -> None:
    store = _store(tmp_path)
    got = [store.assign(f"st{i}", "node") for i in range(4)]
    assert [a.part if a else None for a in got[:3]] == [0, 1, 2]
    assert got[0] == Assignment("st0", 0, "hellos0", 5)
    assert got[3] is None
    assert not store.has_pending()


def test_repeated_subtask_id_is_rejected_without_change(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.assign("a", "n1")
    before = (store.parts(), store.subtasks())
    with pytest.raises(DuplicateSubtaskError):
        store.assign("a", "n2")
    assert (store.parts(), store.subtasks()) == before


def test_failed_prepare_assigns_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path, parts=1)

    def boom(_: Assignment) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.assign("a", "n", prepare=boom)
    assert store.subtasks() == [] and store.has_pending()


def test_concurrent_assign_never_shares_a_part(tmp_path: Path) -> None:
    _store(tmp_path, parts=20)
    results: list[Assignment | None] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        # A store object per thread, as separate RPCs would have.
        own = TaskStore.open(tmp_path)
        for i in range(8):
            a = own.assign(f"t{k}-{i}", f"node{k}")
            with lock:
                results.append(a)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    parts = [a.part for a in results if a is not None]
    assert sorted(parts) == list(range(20))
    assert results.count(None) == 12


def test_settle_success_marks_part_verified_and_runs_hook(tmp_path: Path) -> None:
    store = _store(tmp_path, parts=1)
    store.assign("a", "n")
    merged: list[str] = []
    verdict = store.settle("a", _ok, on_success=lambda a: merged.append(a.input_text))
    assert verdict.outcome is Outcome.SUCCESS and merged == ["hellos0"]
    assert store.parts()[0].state is PartState.VERIFIED
    # A repeated verify answers the same and changes nothing.
    assert store.settle("a", lambda a: pytest.fail("judged twice")).outcome is Outcome.SUCCESS


def test_settle_failure_makes_part_pending_with_reason(tmp_path: Path) -> None:
    store = _store(tmp_path, parts=1)
    store.assign("a", "n")
    verdict = store.settle("a", lambda a: Verdict(Outcome.FAILURE, "bad digest"))
    assert verdict == Verdict(Outcome.FAILURE, "bad digest")
    assert store.subtask("a").state is SubtaskState.FAILED
    assert store.has_pending()
    again = store.settle("a", lambda a: pytest.fail("judged twice"))
    assert again.outcome is Outcome.FAILURE and "bad digest" in (again.reason or "")


def test_settle_awaiting_data_changes_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path, parts=1)
    store.assign("a", "n")
    before = (store.parts(), store.subtasks())
    assert store.settle("a", lambda a: Verdict(Outcome.AWAITING_DATA, "no file")).outcome is Outcome.AWAITING_DATA
    assert (store.parts(), store.subtasks()) == before


def test_failing_success_hook_rolls_back(tmp_path: Path) -> None:
    store = _store(tmp_path, parts=1)
    store.assign("a", "n")

    def boom(_: Assignment) -> None:
        raise OSError("copy failed")

    with pytest.raises(OSError):
        store.settle("a", _ok, on_success=boom)
    assert store.subtask("a").state is SubtaskState.ASSIGNED


def test_unknown_subtask_everywhere(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.assign("a", "n")
    before = (store.parts(), store.subtasks())
    with pytest.raises(UnknownSubtaskError):
        store.settle("zzz", _ok)
    with pytest.raises(UnknownSubtaskError):
        store.discard(["a", "zzz"])
    with pytest.raises(UnknownSubtaskError):
        store.abort_subtask("zzz")
    assert (store.parts(), store.subtasks()) == before


def test_discard_verified_and_assigned(tmp_path: Path) -> None:
    store = _store(tmp_path, parts=2)
    store.assign("a", "n")
    store.assign("b", "n")
    store.settle("a", _ok)
    removed: list[str] = []
    assert store.discard(["a", "b", "a"], on_discard=removed.append) == ["a", "b"]
    assert removed == ["a", "b"]
    assert [p.state for p in store.parts()] == [PartState.PENDING] * 2
    # Discarding again changes nothing and reports nothing.
    assert store.discard(["a"]) == []
    verdict = store.settle("a", lambda a: pytest.fail("judged a discarded subtask"))
    assert verdict.outcome is Outcome.FAILURE and "discarded" in (verdict.reason or "")
    # The parts are handed out again to new subtasks.
    assert [store.assign(s, "n").part for s in ("c", "d")] == [0, 1]


def test_late_verdict_of_old_subtask_does_not_touch_new_holder(tmp_path: Path) -> None:
    store = _store(tmp_path, parts=1)
    store.assign("a", "n")
    store.abort_subtask("a")
    store.assign("b", "n")
    assert store.abort_subtask("a") is False
    assert store.parts()[0].subtask_id == "b"
    assert store.settle("a", _ok).outcome is Outcome.FAILURE
    assert store.parts()[0].state is PartState.ASSIGNED


def test_abort_task_stops_everything_and_keeps_verified(tmp_path: Path) -> None:
    store = _store(tmp_path, parts=3)
    store.assign("a", "n")
    store.assign("b", "n")
    store.settle("a", _ok)
    assert store.abort_task() == ["b"]
    assert store.abort_task() == []
    assert not store.has_pending()
    assert store.assign("c", "n") is None
    assert store.subtask("a").state is SubtaskState.VERIFIED
    assert store.settle("b", _ok).outcome is Outcome.FAILURE


def test_state_survives_reopen(tmp_path: Path) -> None:
    store = _store(tmp_path, parts=2)
    store.assign("a", "n")
    store.settle("a", _ok)
    reopened = TaskStore.open(tmp_path)
    assert [p.state for p in reopened.parts()] == [PartState.VERIFIED, PartState.PENDING]
    assert reopened.assign("b", "n").part == 1
