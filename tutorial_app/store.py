"""The requestor's task state: one SQLite database in the task dir.

The database is the only state the requestor keeps, so a requestor killed
at any point and restarted on the same work dir carries on. Every public
operation is one transaction opened with ``BEGIN IMMEDIATE``: it takes the
write lock before it reads, so two concurrent calls (threads or processes)
are serialised and can never hand one part to two subtasks. File effects
that belong to an operation (writing a subtask's input ZIP, copying a
verified result) run inside its transaction, before the commit; a crash
between the file effect and the commit leaves a file that the same or a
later call overwrites or removes, never a state that points at a missing
file.

Tables::

    task      one row: difficulty, input file name and text, state (active/aborted)
    parts     index, salt, state (pending/assigned/verified), subtask_id (current)
    subtasks  id, part, node, state (assigned/verified/failed/discarded/aborted), reason

A part's text to hash is ``task.input_text + part.salt``.
"""
from __future__ import annotations

import contextlib
import enum
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DB_NAME = "tutorial_app.sqlite3"
"""The store's file name inside the task dir."""

_SCHEMA_VERSION = 1
_BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE task (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    difficulty  INTEGER NOT NULL,
    resource    TEXT NOT NULL,
    input_text  TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('active', 'aborted'))
);
CREATE TABLE parts (
    idx         INTEGER PRIMARY KEY,
    salt        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'assigned', 'verified')),
    subtask_id  TEXT
);
CREATE INDEX parts_state ON parts (state, idx);
CREATE TABLE subtasks (
    id          TEXT PRIMARY KEY,
    part        INTEGER NOT NULL REFERENCES parts (idx),
    node        TEXT NOT NULL,
    state       TEXT NOT NULL
                CHECK (state IN ('assigned', 'verified', 'failed', 'discarded', 'aborted')),
    reason      TEXT,
    created     REAL NOT NULL,
    updated     REAL NOT NULL
);
"""


class StoreError(Exception):
    """Base of the store's errors."""


class TaskNotCreatedError(StoreError, LookupError):
    """The task dir has no store: CreateTask was not called (or failed)."""


class TaskExistsError(StoreError):
    """CreateTask was already called for this task dir."""


class UnknownSubtaskError(StoreError, LookupError):
    """No subtask with this id was handed out for this task."""


class DuplicateSubtaskError(StoreError):
    """A subtask with this id was already handed out."""


class PartState(enum.StrEnum):
    """Where a part of the task is."""

    PENDING = "pending"
    ASSIGNED = "assigned"
    VERIFIED = "verified"


class SubtaskState(enum.StrEnum):
    """Where a handed-out subtask is."""

    ASSIGNED = "assigned"
    VERIFIED = "verified"
    FAILED = "failed"
    DISCARDED = "discarded"
    ABORTED = "aborted"


@dataclass(frozen=True)
class TaskRecord:
    """The task row."""

    difficulty: int
    resource: str
    input_text: str
    aborted: bool


@dataclass(frozen=True)
class PartRecord:
    """One part of the task."""

    index: int
    salt: str
    state: PartState
    subtask_id: str | None


@dataclass(frozen=True)
class SubtaskRecord:
    """One handed-out subtask."""

    subtask_id: str
    part: int
    node: str
    state: SubtaskState
    reason: str | None


@dataclass(frozen=True)
class Assignment:
    """What a subtask must compute: its part's text at the task's difficulty."""

    subtask_id: str
    part: int
    input_text: str
    difficulty: int


@dataclass(frozen=True)
class Verdict:
    """The outcome of a verification; ``reason`` says why when not a success."""

    outcome: "Outcome"
    reason: str | None = None


class Outcome(enum.Enum):
    """What a verification decided."""

    SUCCESS = "success"
    FAILURE = "failure"
    AWAITING_DATA = "awaiting_data"


class TaskStore:
    """The task's state in ``task_dir/tutorial_app.sqlite3``; safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        """Use the store at ``path``; prefer `create` and `open`."""
        self.path = path

    # -- lifecycle -----------------------------------------------------------

    @classmethod
    def create(
        cls, task_dir: Path, *, difficulty: int, resource: str, input_text: str,
        salts: Sequence[str],
    ) -> "TaskStore":
        """Create the store with one pending part per salt; `TaskExistsError` if there is one.

        The database is built under a temporary name and linked into place,
        so a crash leaves either no store or a complete one.
        """
        final = task_dir / DB_NAME
        if final.exists():
            raise TaskExistsError(f"the task in {task_dir.name} was already created")
        tmp = task_dir / f".{DB_NAME}.{uuid.uuid4().hex}.tmp"
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                # WAL is recorded in the file, so every later connection uses it.
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO task (id, difficulty, resource, input_text, state)"
                    " VALUES (1, ?, ?, ?, 'active')",
                    (difficulty, resource, input_text))
                conn.executemany(
                    "INSERT INTO parts (idx, salt, state) VALUES (?, ?, 'pending')",
                    enumerate(salts))
                conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
                conn.execute("COMMIT")
            finally:
                conn.close()
            try:
                os.link(tmp, final)
            except FileExistsError:
                raise TaskExistsError(
                    f"the task in {task_dir.name} was already created") from None
            except OSError:
                # No hard links on this file system: a rename is atomic too,
                # only not exclusive; the node never creates one task twice at once.
                if final.exists():
                    raise TaskExistsError(
                        f"the task in {task_dir.name} was already created") from None
                os.replace(tmp, final)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        return cls(final)

    @classmethod
    def open(cls, task_dir: Path) -> "TaskStore":
        """The store of ``task_dir``; `TaskNotCreatedError` if CreateTask has not made one."""
        path = task_dir / DB_NAME
        if not path.is_file():
            raise TaskNotCreatedError(f"no task was created in {task_dir.name}")
        return cls(path)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``); rolled back if the body raises."""
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000)
        try:
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            # FULL: a verified result must survive even a power cut, not only a kill.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version != _SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path.name} has schema version {version}, expected {_SCHEMA_VERSION}")
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    # -- reads ---------------------------------------------------------------

    def task(self) -> TaskRecord:
        """The task row."""
        with self.transaction() as conn:
            return _task(conn)

    def parts(self) -> list[PartRecord]:
        """Every part, by index."""
        with self.transaction() as conn:
            rows = conn.execute("SELECT idx, salt, state, subtask_id FROM parts ORDER BY idx")
            return [PartRecord(i, salt, PartState(state), sid) for i, salt, state, sid in rows]

    def subtasks(self) -> list[SubtaskRecord]:
        """Every subtask handed out, in the order they were."""
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT id, part, node, state, reason FROM subtasks ORDER BY rowid")
            return [_subtask_record(row) for row in rows]

    def subtask(self, subtask_id: str) -> SubtaskRecord:
        """One subtask; `UnknownSubtaskError` if it was never handed out."""
        with self.transaction() as conn:
            return _subtask(conn, subtask_id)

    def has_pending(self) -> bool:
        """True iff the task is active and a part waits for a subtask."""
        with self.transaction() as conn:
            return _has_pending(conn)

    # -- operations ----------------------------------------------------------

    def assign(
        self, subtask_id: str, node: str,
        prepare: Callable[[Assignment], None] | None = None,
    ) -> Assignment | None:
        """Give the lowest pending part to a new subtask ``subtask_id``; None if none is pending.

        A repeated ``subtask_id`` raises `DuplicateSubtaskError`. ``prepare``
        runs inside the transaction (it writes the subtask's input file); if
        it raises, nothing is assigned.
        """
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM subtasks WHERE id = ?", (subtask_id,)).fetchone():
                raise DuplicateSubtaskError(f"subtask {subtask_id!r} was already handed out")
            task = _task(conn)
            if task.aborted:
                return None
            row = conn.execute(
                "SELECT idx, salt FROM parts WHERE state = 'pending' ORDER BY idx LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            part, salt = row
            now = time.time()
            conn.execute(
                "UPDATE parts SET state = 'assigned', subtask_id = ? WHERE idx = ?",
                (subtask_id, part))
            conn.execute(
                "INSERT INTO subtasks (id, part, node, state, created, updated)"
                " VALUES (?, ?, ?, 'assigned', ?, ?)",
                (subtask_id, part, node, now, now))
            assignment = Assignment(subtask_id, part, task.input_text + salt, task.difficulty)
            if prepare is not None:
                prepare(assignment)
            return assignment

    def settle(
        self, subtask_id: str,
        judge: Callable[[Assignment], Verdict],
        on_success: Callable[[Assignment], None] | None = None,
    ) -> Verdict:
        """Verify subtask ``subtask_id`` with ``judge`` and record the verdict, in one transaction.

        Only an assigned subtask is judged. One already settled gets its old
        verdict again without any change (SUCCESS if verified; FAILURE with a
        reason if failed, discarded or aborted). On SUCCESS ``on_success``
        runs before the commit (it merges the result into task_outputs), the
        subtask and its part become verified. On FAILURE the part is pending
        again. AWAITING_DATA changes nothing.
        """
        with self.transaction() as conn:
            record = _subtask(conn, subtask_id)
            if record.state is not SubtaskState.ASSIGNED:
                return _settled_verdict(record)
            task = _task(conn)
            salt = conn.execute(
                "SELECT salt FROM parts WHERE idx = ?", (record.part,)).fetchone()[0]
            assignment = Assignment(subtask_id, record.part, task.input_text + salt, task.difficulty)
            verdict = judge(assignment)
            if verdict.outcome is Outcome.SUCCESS:
                if on_success is not None:
                    on_success(assignment)
                _set_subtask(conn, subtask_id, SubtaskState.VERIFIED, None)
                conn.execute(
                    "UPDATE parts SET state = 'verified', subtask_id = ? WHERE idx = ?",
                    (subtask_id, record.part))
            elif verdict.outcome is Outcome.FAILURE:
                _set_subtask(conn, subtask_id, SubtaskState.FAILED, verdict.reason)
                _release_part(conn, record.part, subtask_id)
            return verdict

    def discard(
        self, subtask_ids: Sequence[str],
        on_discard: Callable[[str], None] | None = None,
    ) -> list[str]:
        """Discard assigned or verified subtasks; their parts become pending again.

        Returns the ids discarded now, in the order given, each once. Ids
        already failed, discarded or aborted are left as they are and not
        returned. Any unknown id raises `UnknownSubtaskError` and nothing
        changes. ``on_discard`` runs for each discarded id before the commit
        (it takes the result out of task_outputs).
        """
        with self.transaction() as conn:
            records = [_subtask(conn, sid) for sid in dict.fromkeys(subtask_ids)]
            discarded = []
            for record in records:
                if record.state not in (SubtaskState.ASSIGNED, SubtaskState.VERIFIED):
                    continue
                _set_subtask(conn, record.subtask_id, SubtaskState.DISCARDED, "discarded")
                _release_part(conn, record.part, record.subtask_id)
                discarded.append(record.subtask_id)
            for sid in discarded:
                if on_discard is not None:
                    on_discard(sid)
            return discarded

    def abort_subtask(
        self, subtask_id: str, on_abort: Callable[[str], None] | None = None,
    ) -> bool:
        """Abort an assigned subtask: its part becomes pending again. True if it was assigned.

        A subtask in any other state is left as it is; an unknown id raises
        `UnknownSubtaskError`. ``on_abort`` runs before the commit when the
        subtask is aborted (it removes a result a crashed Verify left behind).
        """
        with self.transaction() as conn:
            record = _subtask(conn, subtask_id)
            if record.state is not SubtaskState.ASSIGNED:
                return False
            _set_subtask(conn, subtask_id, SubtaskState.ABORTED, "subtask aborted")
            _release_part(conn, record.part, subtask_id)
            if on_abort is not None:
                on_abort(subtask_id)
            return True

    def abort_task(self, on_abort: Callable[[str], None] | None = None) -> list[str]:
        """Abort the task: no part is handed out any more; assigned subtasks are aborted.

        Verified results stay. Idempotent. Returns the subtasks aborted now;
        ``on_abort`` runs for each before the commit.
        """
        with self.transaction() as conn:
            conn.execute("UPDATE task SET state = 'aborted' WHERE id = 1")
            ids = [row[0] for row in conn.execute(
                "SELECT id FROM subtasks WHERE state = 'assigned' ORDER BY rowid")]
            for sid in ids:
                _set_subtask(conn, sid, SubtaskState.ABORTED, "task aborted")
            conn.execute(
                "UPDATE parts SET state = 'pending', subtask_id = NULL WHERE state = 'assigned'")
            for sid in ids:
                if on_abort is not None:
                    on_abort(sid)
            return ids


def _task(conn: sqlite3.Connection) -> TaskRecord:
    difficulty, resource, input_text, state = conn.execute(
        "SELECT difficulty, resource, input_text, state FROM task WHERE id = 1").fetchone()
    return TaskRecord(difficulty, resource, input_text, state == "aborted")


def _subtask(conn: sqlite3.Connection, subtask_id: str) -> SubtaskRecord:
    row = conn.execute(
        "SELECT id, part, node, state, reason FROM subtasks WHERE id = ?", (subtask_id,)
    ).fetchone()
    if row is None:
        raise UnknownSubtaskError(f"no subtask {subtask_id!r} was handed out for this task")
    return _subtask_record(row)


def _subtask_record(row: tuple[Any, ...]) -> SubtaskRecord:
    sid, part, node, state, reason = row
    return SubtaskRecord(sid, part, node, SubtaskState(state), reason)


def _has_pending(conn: sqlite3.Connection) -> bool:
    if _task(conn).aborted:
        return False
    return conn.execute("SELECT 1 FROM parts WHERE state = 'pending' LIMIT 1").fetchone() is not None


def _set_subtask(
    conn: sqlite3.Connection, subtask_id: str, state: SubtaskState, reason: str | None,
) -> None:
    conn.execute(
        "UPDATE subtasks SET state = ?, reason = ?, updated = ? WHERE id = ?",
        (state.value, reason, time.time(), subtask_id))


def _release_part(conn: sqlite3.Connection, part: int, subtask_id: str) -> None:
    """Make ``part`` pending again if ``subtask_id`` is the subtask holding it."""
    conn.execute(
        "UPDATE parts SET state = 'pending', subtask_id = NULL"
        " WHERE idx = ? AND subtask_id = ?",
        (part, subtask_id))


def _settled_verdict(record: SubtaskRecord) -> Verdict:
    if record.state is SubtaskState.VERIFIED:
        return Verdict(Outcome.SUCCESS)
    if record.state is SubtaskState.FAILED:
        return Verdict(Outcome.FAILURE, f"already verified as failed: {record.reason}")
    return Verdict(Outcome.FAILURE, f"subtask {record.subtask_id} was {record.state.value}"
                   " (its part is computed by another subtask); its result is not used")
