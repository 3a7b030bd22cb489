"""The requestor's task state, built on `golem_task_api.apputils.task.database`.

Why on `DBTaskManager`: it is how published apps keep task state (peewee
models in ``task.db``, a part model subclassed with the app's own columns),
so building our app on it shows app authors the way, and there is one
task-state store in the repo, not two. What our app needs beyond it lives
here as peewee subclasses and one extra model in the same file: each part's
salt (`TutorialPart`), each subtask's node, verdict reason and whether it
was discarded (`TutorialSubtask`), and the task row (`TaskMeta`: difficulty,
input file name and text, the CreateTask request, aborted). The guarantees
are the manager's, kept for every operation here: a WAL database with
``synchronous=FULL``; every public operation is one transaction opened with
``BEGIN IMMEDIATE`` (`DBTaskManager.transaction`), so it takes the write
lock before it reads and two concurrent calls (threads or processes) can
never hand one part to two subtasks; a SIGKILL at any instant leaves each
operation wholly done or not at all. Reads (`has_pending` above all) use a
read transaction and never wait for a writer.

File effects are ordered around the commit by the caller (the requestor):
files an operation creates are written before its commit (``prepare``,
``on_success``), so a committed state never points at a missing file;
files it deletes are deleted after the commit (``on_discard``,
``on_abort`` run after it), so a crash never loses a result the store still
counts as verified. A crash leaves at most files nothing refers to;
`TaskStore.recover` hands the requestor what it needs to sweep them.

Subtask states map onto `SubtaskStatus`: assigned is COMPUTING, verified
SUCCESS, failed FAILURE, discarded and aborted ABORTED (told apart by
``discarded``). A part is pending while its current subtask is absent,
FAILURE or ABORTED. A part's text to hash is ``task.input_text + part.salt``.
"""
from __future__ import annotations

import contextlib
import enum
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import peewee
from golem_task_api.apputils.database import slot
from golem_task_api.apputils.task import SubtaskStatus
from golem_task_api.apputils.task.database import (
    DB_FILE_NAME, BaseModel, DBTaskManager, Part, Subtask,
)

DB_NAME = DB_FILE_NAME
"""The store's file name inside the task dir (``task.db``, the manager's)."""

CRASH_POINT_ENV = "TUTORIAL_APP_CRASH_POINT"
"""Fault injection for the test suite: ``"<point name>#<n>"`` kills the process
(SIGKILL) the n-th time it reaches that point; unset, the points cost one lookup."""

_crash_trace: list[str] = []


def crash_point(name: str) -> None:
    """A point where a mutation of a task's state begins or ends (a commit, a file effect).

    A no-op unless `CRASH_POINT_ENV` is set; then the point is recorded in
    the trace and, when the variable names it, the process dies right here
    as if killed from outside, so a test can restart on what it left.
    """
    target = os.environ.get(CRASH_POINT_ENV)
    if not target:
        return
    _crash_trace.append(name)
    if target == f"{name}#{_crash_trace.count(name)}":
        os.kill(os.getpid(), signal.SIGKILL)


def crash_trace() -> list[str]:
    """The points reached so far in this process while `CRASH_POINT_ENV` was set."""
    return list(_crash_trace)


class StoreError(Exception):
    """Base of the store's errors."""


class TaskNotCreatedError(StoreError, LookupError):
    """The task dir has no store: CreateTask was not called (or failed)."""


class TaskExistsError(StoreError):
    """CreateTask was already called for this task dir (with other params)."""


class UnknownSubtaskError(StoreError, LookupError):
    """No subtask with this id was handed out for this task."""


class DuplicateSubtaskError(StoreError):
    """A subtask with this id was already handed out (to another node)."""


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


# -- the models: the manager's, with our columns ----------------------------

class TutorialPart(Part):
    """A part and its salt (its text to hash is the task input followed by the salt)."""

    salt = peewee.CharField()


class TutorialSubtask(Subtask):
    """A subtask, the node it went to and how it ended."""

    node = peewee.TextField()
    reason = peewee.TextField(null=True)
    discarded = peewee.BooleanField(default=False)
    created = peewee.FloatField()
    updated = peewee.FloatField()


class TaskMeta(BaseModel):
    """The task row (one per task dir)."""

    id = peewee.IntegerField(primary_key=True)
    difficulty = peewee.IntegerField()
    resource = peewee.TextField()
    input_text = peewee.TextField()
    request = peewee.TextField(null=True)
    """The CreateTask request as canonical JSON: a retry must match it."""
    aborted = peewee.BooleanField(default=False)

    class Meta:
        table_name = "task"


class TutorialTaskManager(DBTaskManager):
    """The app's `DBTaskManager`: our part and subtask models, plus the task row."""

    extra_models = (TaskMeta,)

    def __init__(self, work_dir: Path) -> None:
        """Open (creating if needed) ``work_dir/task.db``."""
        super().__init__(work_dir, part_model=TutorialPart, subtask_model=TutorialSubtask)


_TASK_ROW = 1
_LIVE = [SubtaskStatus.COMPUTING, SubtaskStatus.VERIFYING]


# -- records -----------------------------------------------------------------

@dataclass(frozen=True)
class TaskRecord:
    """The task row."""

    difficulty: int
    resource: str
    input_text: str
    aborted: bool


@dataclass(frozen=True)
class PartRecord:
    """One part of the task; ``subtask_id`` is its holder while assigned or verified."""

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
    """What a subtask must compute: its part's text at the task's difficulty.

    ``retry`` is true when the subtask was handed out by an earlier call
    (the node retrying a NextSubtask whose reply it lost).
    """

    subtask_id: str
    part: int
    input_text: str
    difficulty: int
    retry: bool = False


class Outcome(enum.Enum):
    """What a verification decided."""

    SUCCESS = "success"
    FAILURE = "failure"
    AWAITING_DATA = "awaiting_data"


@dataclass(frozen=True)
class Verdict:
    """The outcome of a verification; ``reason`` says why when not a success."""

    outcome: Outcome
    reason: str | None = None


class TaskStore:
    """The task's state in ``task_dir/task.db``; safe across threads and processes."""

    def __init__(self, manager: TutorialTaskManager) -> None:
        """Use the store ``manager`` keeps; prefer `create` and `open`."""
        self.manager = manager
        self.path = manager.db_path

    # -- lifecycle -----------------------------------------------------------

    @classmethod
    def create(
        cls, task_dir: Path, *, difficulty: int, resource: str, input_text: str,
        salts: Sequence[str], request: str | None = None,
    ) -> "TaskStore":
        """Create the task with one pending part per salt, in one transaction.

        If the task exists already: the same non-None ``request`` (a
        CreateTask retry) returns the store unchanged; anything else raises
        `TaskExistsError`. A crash leaves the task wholly created or absent.
        """
        store = cls(TutorialTaskManager(task_dir))
        with store._write("create"):
            existing = (TaskMeta.select(TaskMeta.request)
                        .where(TaskMeta.id == _TASK_ROW).tuples().first())
            if existing is not None:
                if request is not None and existing[0] == request:
                    return store
                raise TaskExistsError(f"the task in {Path(task_dir).name} was already created")
            TaskMeta.insert(id=_TASK_ROW, difficulty=difficulty, resource=resource,
                            input_text=input_text, request=request).execute()
            store.manager.create_task(len(salts), salt=list(salts))
        return store

    @classmethod
    def open(cls, task_dir: Path) -> "TaskStore":
        """The store of ``task_dir``; `TaskNotCreatedError` if CreateTask has not made one."""
        if not (Path(task_dir) / DB_NAME).is_file():
            raise TaskNotCreatedError(f"no task was created in {Path(task_dir).name}")
        return cls(TutorialTaskManager(task_dir))

    @contextlib.contextmanager
    def _write(self, operation: str) -> Iterator[None]:
        """One write transaction named for the crash points around its commit."""
        with self.manager.transaction():
            yield
            crash_point(f"{operation}: before commit")
        crash_point(f"{operation}: after commit")

    # -- reads ---------------------------------------------------------------

    def task(self) -> TaskRecord:
        """The task row."""
        with self.manager.reading():
            meta = self._meta()
        return TaskRecord(meta.difficulty, meta.resource, meta.input_text, meta.aborted)

    def parts(self) -> list[PartRecord]:
        """Every part, by index."""
        with self.manager.reading():
            rows = list(
                TutorialPart.select(TutorialPart.num, TutorialPart.salt,
                                    TutorialSubtask.id, TutorialSubtask.status)
                .join(TutorialSubtask, peewee.JOIN.LEFT_OUTER,
                      on=(TutorialPart.subtask == TutorialSubtask.id))
                .order_by(TutorialPart.num).tuples())
        records = []
        for num, salt, sid, status in rows:
            state = _part_state(TutorialSubtask.status.python_value(status) if sid else None)
            records.append(PartRecord(num, salt, state, None if state is PartState.PENDING else sid))
        return records

    def subtasks(self) -> list[SubtaskRecord]:
        """Every subtask handed out, in the order they were."""
        with self.manager.reading():
            return [_subtask_record(s) for s in
                    TutorialSubtask.select().order_by(peewee.SQL("rowid"))]

    def subtask(self, subtask_id: str) -> SubtaskRecord:
        """One subtask; `UnknownSubtaskError` if it was never handed out."""
        with self.manager.reading():
            return self._subtask(subtask_id)

    def has_pending(self) -> bool:
        """True iff the task is active and a part waits for a subtask.

        A read: no write lock, and the input text is not loaded.
        """
        with self.manager.reading():
            if self._meta_aborted():
                return False
            return self.manager.get_next_computable_part_num() is not None

    # -- operations ----------------------------------------------------------

    def assign(
        self, subtask_id: str, node: str,
        prepare: Callable[[Assignment], None] | None = None,
    ) -> Assignment | None:
        """Give the lowest pending part to a new subtask ``subtask_id``; None if none is pending.

        The same ``subtask_id`` from the same ``node`` again (a retry) gets
        the same assignment, marked ``retry``; from another node it raises
        `DuplicateSubtaskError`. ``prepare`` runs inside the transaction,
        before the commit (it writes the subtask's input file); if it raises,
        nothing is assigned.
        """
        with self._write("assign"):
            existing = self._subtask_or_none(subtask_id)
            if existing is not None:
                if existing.node != node:
                    raise DuplicateSubtaskError(
                        f"subtask {subtask_id!r} was already handed out to another node")
                assignment = self._assignment(subtask_id, existing.part, retry=True)
            else:
                if self._meta_aborted():
                    return None
                part = self.manager.get_next_computable_part_num()
                if part is None:
                    return None
                now = time.time()
                self.manager.start_subtask(part, subtask_id, node=node, created=now, updated=now)
                assignment = self._assignment(subtask_id, part)
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
        runs before the commit (it merges the result into task_outputs) and
        the subtask and its part become verified. On FAILURE the part is
        pending again. AWAITING_DATA changes nothing.
        """
        with self._write("verify"):
            record = self._subtask(subtask_id)
            if record.state is not SubtaskState.ASSIGNED:
                return _settled_verdict(record)
            assignment = self._assignment(subtask_id, record.part)
            verdict = judge(assignment)
            if verdict.outcome is Outcome.SUCCESS:
                if on_success is not None:
                    on_success(assignment)
                self._set(subtask_id, SubtaskStatus.SUCCESS, None)
            elif verdict.outcome is Outcome.FAILURE:
                self._set(subtask_id, SubtaskStatus.FAILURE, verdict.reason)
            return verdict

    def discard(
        self, subtask_ids: Sequence[str],
        on_discard: Callable[[str], None] | None = None,
    ) -> list[str]:
        """Discard assigned or verified subtasks; their parts become pending again.

        Returns the ids discarded now, in the order given, each once. Ids
        already failed, discarded or aborted are left as they are and not
        returned. Any unknown id raises `UnknownSubtaskError` and nothing
        changes. ``on_discard`` runs for each discarded id after the commit
        (it takes the result out of task_outputs).
        """
        with self._write("discard"):
            records = [self._subtask(sid) for sid in dict.fromkeys(subtask_ids)]
            discarded = [r.subtask_id for r in records
                         if r.state in (SubtaskState.ASSIGNED, SubtaskState.VERIFIED)]
            for sid in discarded:
                self._set(sid, SubtaskStatus.ABORTED, "discarded", discarded=True)
        _after_commit(discarded, on_discard)
        return discarded

    def abort_subtask(
        self, subtask_id: str, on_abort: Callable[[str], None] | None = None,
    ) -> bool:
        """Abort an assigned subtask: its part becomes pending again. True if it was assigned.

        A subtask in any other state is left as it is; an unknown id raises
        `UnknownSubtaskError`. ``on_abort`` runs after the commit when the
        subtask is aborted (it removes a result a crashed Verify left behind).
        """
        with self._write("abort subtask"):
            record = self._subtask(subtask_id)
            if record.state is not SubtaskState.ASSIGNED:
                return False
            self._set(subtask_id, SubtaskStatus.ABORTED, "subtask aborted")
        _after_commit([subtask_id], on_abort)
        return True

    def abort_task(self, on_abort: Callable[[str], None] | None = None) -> list[str]:
        """Abort the task: no part is handed out any more; assigned subtasks are aborted.

        Verified results stay, and so do failed subtasks' verdicts (unlike
        `DBTaskManager.abort_task`, which would relabel those ABORTED).
        Idempotent. Returns the subtasks aborted now; ``on_abort`` runs for
        each after the commit.
        """
        with self._write("abort task"):
            self._meta()
            TaskMeta.update(aborted=True).where(TaskMeta.id == _TASK_ROW).execute()
            ids = [sid for (sid,) in TutorialSubtask.select(TutorialSubtask.id)
                   .where(TutorialSubtask.status.in_(_LIVE))
                   .order_by(peewee.SQL("rowid")).tuples()]
            (TutorialSubtask.update(status=SubtaskStatus.ABORTED, reason="task aborted",
                                    updated=time.time())
             .where(TutorialSubtask.id.in_(ids)).execute())
        _after_commit(ids, on_abort)
        return ids

    def recover(self, sweep: Callable[[set[str], set[str]], None]) -> None:
        """Run ``sweep(known_ids, verified_ids)`` under the write lock.

        The requestor removes there what killed calls left behind: temp
        files, inputs of subtasks never committed, results not verified.
        Holding the lock, no other call is half-way through a file effect.
        """
        with self._write("recover"):
            rows = TutorialSubtask.select(TutorialSubtask.id, TutorialSubtask.status).tuples()
            known: set[str] = set()
            verified: set[str] = set()
            for sid, status in rows:
                known.add(sid)
                if TutorialSubtask.status.python_value(status) is SubtaskStatus.SUCCESS:
                    verified.add(sid)
            sweep(known, verified)

    # -- helpers (inside a transaction) --------------------------------------

    def _meta(self) -> TaskMeta:
        meta = TaskMeta.get_or_none(TaskMeta.id == _TASK_ROW)
        if meta is None:
            raise TaskNotCreatedError(f"no task was created in {self.manager.work_dir.name}")
        return meta

    def _meta_aborted(self) -> bool:
        row = self.manager.query(
            "task aborted",
            lambda: TaskMeta.select(TaskMeta.aborted).where(TaskMeta.id == _TASK_ROW)).fetchone()
        if row is None:
            raise TaskNotCreatedError(f"no task was created in {self.manager.work_dir.name}")
        return bool(row[0])

    def _subtask_or_none(self, subtask_id: str) -> SubtaskRecord | None:
        S = TutorialSubtask
        row = self.manager.query(
            "subtask",
            lambda: (S.select(S.id, S.part, S.node, S.status, S.discarded, S.reason)
                     .where(S.id == slot("id"))),
            id=subtask_id).fetchone()
        if row is None:
            return None
        sid, part, node, status, discarded, reason = row
        return SubtaskRecord(sid, part, node,
                             _subtask_state(S.status.python_value(status), bool(discarded)), reason)

    def _subtask(self, subtask_id: str) -> SubtaskRecord:
        self._meta_aborted()  # a task never created is NOT_FOUND before any subtask is
        record = self._subtask_or_none(subtask_id)
        if record is None:
            raise UnknownSubtaskError(f"no subtask {subtask_id!r} was handed out for this task")
        return record

    def _assignment(self, subtask_id: str, part: int, retry: bool = False) -> Assignment:
        difficulty, input_text = self.manager.query(
            "task input",
            lambda: (TaskMeta.select(TaskMeta.difficulty, TaskMeta.input_text)
                     .where(TaskMeta.id == _TASK_ROW))).fetchone()
        (salt,) = self.manager.query(
            "salt",
            lambda: TutorialPart.select(TutorialPart.salt).where(TutorialPart.num == slot("num")),
            num=part).fetchone()
        return Assignment(subtask_id, part, input_text + salt, difficulty, retry)

    def _set(
        self, subtask_id: str, status: SubtaskStatus, reason: str | None, discarded: bool = False,
    ) -> None:
        self.manager.update_subtask_status(subtask_id, status)
        S = TutorialSubtask
        self.manager.query(
            "subtask outcome",
            lambda: (S.update({S.reason: peewee.Value(slot("reason")),
                               S.discarded: peewee.Value(slot("discarded")),
                               S.updated: peewee.Value(slot("updated"))})
                     .where(S.id == slot("id"))),
            reason=reason, discarded=int(discarded), updated=time.time(), id=subtask_id)


def _after_commit(ids: Sequence[str], hook: Callable[[str], None] | None) -> None:
    if hook is None:
        return
    for sid in ids:
        hook(sid)


def _part_state(status: SubtaskStatus | None) -> PartState:
    if status is None or status.is_computable():
        return PartState.PENDING
    if status is SubtaskStatus.SUCCESS:
        return PartState.VERIFIED
    return PartState.ASSIGNED


def _subtask_record(subtask: TutorialSubtask) -> SubtaskRecord:
    return SubtaskRecord(subtask.id, subtask.part_id, subtask.node,
                         _subtask_state(subtask.status, subtask.discarded), subtask.reason)


def _subtask_state(status: SubtaskStatus, discarded: bool) -> SubtaskState:
    if status is SubtaskStatus.SUCCESS:
        return SubtaskState.VERIFIED
    if status is SubtaskStatus.FAILURE:
        return SubtaskState.FAILED
    if status is SubtaskStatus.ABORTED:
        return SubtaskState.DISCARDED if discarded else SubtaskState.ABORTED
    return SubtaskState.ASSIGNED


def _settled_verdict(record: SubtaskRecord) -> Verdict:
    if record.state is SubtaskState.VERIFIED:
        return Verdict(Outcome.SUCCESS)
    if record.state is SubtaskState.FAILED:
        return Verdict(Outcome.FAILURE, f"already verified as failed: {record.reason}")
    return Verdict(Outcome.FAILURE, f"subtask {record.subtask_id} was {record.state.value}"
                   " (its part is computed by another subtask); its result is not used")
