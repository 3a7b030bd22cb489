"""apputils.task.database: a requestor built on DBTaskManager the way published apps are."""
from __future__ import annotations

import asyncio
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import peewee
import psutil
import pytest

from golem_task_api.apputils.task import (
    PartNotComputableError, SubtaskExistsError, SubtaskStatus, TaskAlreadyCreatedError,
    UnknownSubtaskError,
)
from golem_task_api.apputils.task import database as task_db
from golem_task_api.apputils.task.database import DBTaskManager


class Part(task_db.Part):
    """A published app's own part model: it keeps each part's input."""

    input_data = peewee.CharField(null=True)
    difficulty = peewee.FloatField(null=True)


class PublishedStyleRequestor:
    """The shape of a published app's requestor: a DBTaskManager per call."""

    async def create_task(self, task_dir: Path, count: int, text: str) -> None:
        # As published apps do: plain calls and Model.save(), no transaction of their own.
        manager = DBTaskManager(task_dir, part_model=Part)
        manager.create_task(count)
        for num in range(count):
            part = manager.get_part(num)
            part.input_data = f"{text}-{num}"
            part.difficulty = 2.0
            part.save()

    async def next_subtask(self, task_dir: Path, subtask_id: str) -> str | None:
        manager = DBTaskManager(task_dir, part_model=Part)
        with manager.transaction():
            num = manager.get_next_computable_part_num()
            if num is None:
                return None
            manager.start_subtask(num, subtask_id)
            return manager.get_part(num).input_data

    async def verify(self, task_dir: Path, subtask_id: str, ok: bool) -> None:
        manager = DBTaskManager(task_dir, part_model=Part)
        manager.update_subtask_status(subtask_id, SubtaskStatus.VERIFYING)
        manager.update_subtask_status(
            subtask_id, SubtaskStatus.SUCCESS if ok else SubtaskStatus.FAILURE)

    async def discard_subtasks(self, task_dir: Path, ids: list[str]) -> list[str]:
        manager = DBTaskManager(task_dir, part_model=Part)
        for sid in ids:
            manager.update_subtask_status(sid, SubtaskStatus.ABORTED)
        return ids

    async def has_pending_subtasks(self, task_dir: Path) -> bool:
        return DBTaskManager(task_dir, part_model=Part).get_next_computable_part_num() is not None


def test_published_style_requestor_runs_a_whole_task(tmp_path: Path) -> None:
    app = PublishedStyleRequestor()

    async def scenario() -> list[str | None]:
        await app.create_task(tmp_path, 3, "in")
        got = [await app.next_subtask(tmp_path, s) for s in ("a", "b", "c", "d")]
        await app.verify(tmp_path, "a", ok=True)
        await app.verify(tmp_path, "b", ok=False)
        assert await app.has_pending_subtasks(tmp_path)
        got.append(await app.next_subtask(tmp_path, "b2"))
        await app.verify(tmp_path, "b2", ok=True)
        await app.discard_subtasks(tmp_path, ["c"])
        got.append(await app.next_subtask(tmp_path, "c2"))
        await app.verify(tmp_path, "c2", ok=True)
        assert not await app.has_pending_subtasks(tmp_path)
        return got

    got = asyncio.run(scenario())
    assert got == ["in-0", "in-1", "in-2", None, "in-1", "in-2"]
    manager = DBTaskManager(tmp_path, part_model=Part)
    assert manager.get_subtasks_statuses([0, 1, 2]) == {
        0: (SubtaskStatus.SUCCESS, "a"), 1: (SubtaskStatus.SUCCESS, "b2"),
        2: (SubtaskStatus.SUCCESS, "c2")}
    assert isinstance(manager.get_part(0), Part)
    assert manager.get_part_num("c") == 2 and manager.get_part_num("zzz") is None


def test_grouped_calls_roll_back_together(tmp_path: Path) -> None:
    manager = DBTaskManager(tmp_path, part_model=Part)
    manager.create_task(2)
    with pytest.raises(RuntimeError), manager.transaction():
        manager.start_subtask(0, "a")
        part = manager.get_part(1)
        part.input_data = "changed"
        part.save()
        raise RuntimeError("the app's own step failed")
    assert manager.get_subtask("a") is None
    assert manager.get_part(1).input_data is None
    assert manager.get_next_computable_part_num() == 0


def test_database_file_is_wal_with_foreign_keys(tmp_path: Path) -> None:
    manager = DBTaskManager(tmp_path, part_model=Part)
    manager.create_task(1)
    conn = sqlite3.connect(tmp_path / "task.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"part", "subtask"} <= tables
    conn.close()
    with manager.transaction(), pytest.raises(peewee.IntegrityError):
        # Foreign keys are enforced: a subtask of a part that does not exist.
        task_db.Subtask.insert(id="x", part=99).execute()


def test_start_subtask_rules(tmp_path: Path) -> None:
    manager = DBTaskManager(tmp_path)
    manager.create_task(2)
    with pytest.raises(TaskAlreadyCreatedError):
        manager.create_task(2)
    manager.start_subtask(0, "a")
    assert manager.get_subtask("a").status is SubtaskStatus.COMPUTING
    with pytest.raises(PartNotComputableError):
        manager.start_subtask(0, "b")
    with pytest.raises(SubtaskExistsError):
        manager.start_subtask(1, "a")
    assert manager.get_next_computable_part_num() == 1
    for status, computable in [(SubtaskStatus.VERIFYING, False), (SubtaskStatus.FAILURE, True),
                               (SubtaskStatus.ABORTED, True), (SubtaskStatus.SUCCESS, False)]:
        manager.update_subtask_status("a", status)
        assert (manager.get_next_computable_part_num() == 0) is computable
    with pytest.raises(UnknownSubtaskError):
        manager.update_subtask_status("zzz", SubtaskStatus.FAILURE)
    assert manager.get_subtasks_statuses([0, 1]) == {
        0: (SubtaskStatus.SUCCESS, "a"), 1: (SubtaskStatus.WAITING, None)}


def test_abort_task_aborts_every_current_subtask_but_successes(tmp_path: Path) -> None:
    manager = DBTaskManager(tmp_path)
    manager.create_task(4)
    for num, sid in enumerate("abc"):
        manager.start_subtask(num, sid)
    manager.update_subtask_status("a", SubtaskStatus.SUCCESS)
    manager.update_subtask_status("b", SubtaskStatus.VERIFYING)
    manager.abort_task()
    assert manager.get_subtasks_statuses(range(4)) == {
        0: (SubtaskStatus.SUCCESS, "a"), 1: (SubtaskStatus.ABORTED, "b"),
        2: (SubtaskStatus.ABORTED, "c"), 3: (SubtaskStatus.WAITING, None)}


def test_subtask_status_enum() -> None:
    assert SubtaskStatus.default() is SubtaskStatus.WAITING
    assert SubtaskStatus.WAITING.value is None
    assert [s for s in SubtaskStatus if s.is_computable()] == [
        SubtaskStatus.WAITING, SubtaskStatus.FAILURE, SubtaskStatus.ABORTED]


def test_two_tasks_in_one_process_from_threads_never_mix(tmp_path: Path) -> None:
    dirs = [tmp_path / "t1", tmp_path / "t2"]
    for d in dirs:
        d.mkdir()
        DBTaskManager(d).create_task(40)
    errors: list[BaseException] = []

    def node(d: Path, k: int) -> None:
        try:
            for i in range(10):
                manager = DBTaskManager(d)
                with manager.transaction():
                    num = manager.get_next_computable_part_num()
                    manager.start_subtask(num, f"{d.name}-{k}-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=node, args=(d, k)) for d in dirs for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for d in dirs:
        conn = sqlite3.connect(d / "task.db")
        ids = [r[0] for r in conn.execute("SELECT id FROM subtask")]
        parts = [r[0] for r in conn.execute("SELECT part_id FROM subtask")]
        conn.close()
        assert len(ids) == 40 and all(i.startswith(d.name) for i in ids)
        assert sorted(parts) == list(range(40))


_CHURN = textwrap.dedent("""
    import sys
    from pathlib import Path
    from golem_task_api.apputils.task import SubtaskStatus
    from golem_task_api.apputils.task.database import DBTaskManager
    work = Path(sys.argv[1])
    manager = DBTaskManager(work)
    print("ready", flush=True)
    i = 0
    while True:
        num = manager.get_next_computable_part_num()
        if num is None:
            manager.abort_task()
            continue
        manager.start_subtask(num, f"s{i}")
        manager.update_subtask_status(
            f"s{i}", SubtaskStatus.FAILURE if i % 3 else SubtaskStatus.ABORTED)
        i += 1
""")


@pytest.mark.parametrize("delay", [0.15, 0.4, 0.7])
def test_sigkill_mid_run_leaves_no_half_written_state(tmp_path: Path, delay: float) -> None:
    DBTaskManager(tmp_path).create_task(50)
    child = subprocess.Popen([sys.executable, "-c", _CHURN, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        time.sleep(delay)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    conn = sqlite3.connect(tmp_path / "task.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute("SELECT id, part_id, status FROM subtask").fetchall()
    current = dict(conn.execute("SELECT num, subtask_id FROM part"))
    conn.close()
    assert len(rows) > 0, "the child made no progress"
    by_id = {sid: (part, status) for sid, part, status in rows}
    # Every pointer from a part leads to a subtask of that very part...
    for num, sid in current.items():
        if sid is not None:
            assert by_id[sid][0] == num
    # ... and a started subtask is always its part's current one (one transaction each).
    for sid, (part, _) in by_id.items():
        later = [s for s, (p, _) in by_id.items() if p == part and int(s[1:]) > int(sid[1:])]
        if not later:
            assert current[part] == sid
    # The manager carries on on the same file.
    manager = DBTaskManager(tmp_path)
    assert manager.get_next_computable_part_num() is not None


def test_a_task_dir_made_again_gets_a_fresh_database(tmp_path: Path) -> None:
    """Connections are kept between calls: one to a deleted file must not be reused."""
    task_dir = tmp_path / "task"
    task_dir.mkdir()
    manager = DBTaskManager(task_dir)
    manager.create_task(2)
    manager.start_subtask(0, "a")
    shutil.rmtree(task_dir)
    task_dir.mkdir()
    again = DBTaskManager(task_dir)
    again.create_task(3)
    assert again.get_subtask("a") is None
    assert again.get_subtasks_statuses(range(3)) == dict.fromkeys(
        range(3), (SubtaskStatus.WAITING, None))


def test_threads_keep_one_connection_each(tmp_path: Path) -> None:
    """A process serving many tasks keeps at most one open file set per thread."""
    dirs = []
    for i in range(5):
        d = tmp_path / f"t{i}"
        d.mkdir()
        DBTaskManager(d).create_task(1)
        dirs.append(d)
    for d in dirs * 3:
        DBTaskManager(d).get_next_computable_part_num()
    ours = [f.path for f in psutil.Process().open_files() if f.path.startswith(str(tmp_path))]
    assert len([p for p in ours if p.endswith("task.db")]) <= 1
    assert len(ours) <= 3  # the file, its WAL and its shared-memory index
