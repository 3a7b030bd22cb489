"""`TaskManager` on SQLite: peewee `Part`/`Subtask` models and `DBTaskManager`.

Apps subclass the models to add their own columns and pass the subclasses
to `DBTaskManager`::

    class Part(database.Part):
        input_data = peewee.CharField(null=True)

    manager = DBTaskManager(task_work_dir, part_model=Part)

A subclass keeps its base's table (``part`` / ``subtask``), so the foreign
keys between the two tables hold whichever subclasses an app uses.

Crash safety: each call is one SQLite transaction (writes take the write
lock up front with ``BEGIN IMMEDIATE``, so concurrent callers in threads or
processes queue and never both give out one part), on a WAL database with
``synchronous=FULL``: a process killed at any instant leaves each call
either wholly done or not done at all. Apps group several calls (and their
own model updates) into one transaction with `DBTaskManager.transaction`.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import peewee

from golem_task_api.apputils.database import (
    CompiledQueries, connected, database, initialize_database, slot,
)
from golem_task_api.apputils.database.fields import EnumField
from golem_task_api.apputils.task import (
    PartNotComputableError, SubtaskExistsError, SubtaskStatus, TaskAlreadyCreatedError,
    TaskManager, UnknownPartError, UnknownSubtaskError,
)

DB_FILE_NAME = "task.db"
"""The task manager's SQLite file, in the task's work dir."""

_INSERT_BATCH = 500


class BaseModel(peewee.Model):
    """A model bound through `golem_task_api.apputils.database.database`."""

    class Meta:
        database = database


class Part(BaseModel):
    """One part of the task; ``subtask`` is the part's current subtask."""

    num = peewee.IntegerField(primary_key=True)
    subtask = peewee.DeferredForeignKey("Subtask", null=True, backref="parts")

    class Meta:
        # Inherited by subclasses (peewee's table_function is), unlike table_name.
        table_function = lambda model: "part"  # noqa: E731


class Subtask(BaseModel):
    """One subtask given out; ``part`` is the part it computes."""

    id = peewee.CharField(primary_key=True)
    part = peewee.ForeignKeyField(Part, null=True, backref="subtasks")
    status = EnumField(SubtaskStatus, default=SubtaskStatus.WAITING)

    class Meta:
        table_function = lambda model: "subtask"  # noqa: E731


_COMPUTABLE = [SubtaskStatus.FAILURE, SubtaskStatus.ABORTED]
_queries = CompiledQueries()


class DBTaskManager(TaskManager):
    """The task's parts and subtasks in ``work_dir/task.db``.

    Safe to use from several threads and processes at once; one instance
    per call is fine (opening is cheap and takes no lock).
    """

    extra_models: tuple[type[peewee.Model], ...] = ()
    """Models of a subclass stored in the same file (and transactions)."""

    def __init__(
        self, work_dir: Path,
        part_model: type[Part] = Part,
        subtask_model: type[Subtask] = Subtask,
    ) -> None:
        """Open (creating if needed) ``work_dir/task.db`` with tables for the models."""
        self.work_dir = Path(os.fspath(work_dir))
        self.db_path = self.work_dir / DB_FILE_NAME
        self._part = part_model
        self._subtask = subtask_model
        self.models: list[type[peewee.Model]] = [part_model, subtask_model, *self.extra_models]
        self.db = initialize_database(database, self.db_path, self.models)

    def query(self, name: str, build: Callable[[], peewee.Query], **values: Any) -> Any:
        """Run a query of this manager's models, built once per process (see `CompiledQueries`).

        For hot paths: ``build`` uses `slot` placeholders for ``values``.
        Call it inside `transaction` or `reading`. Returns the cursor.
        """
        return _queries.run(self.db, (type(self), self._part, self._subtask, name), build, **values)

    # -- transactions ------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (``BEGIN IMMEDIATE``) around the block; nested ones join it.

        Rolled back if the block raises; committed when it ends.
        """
        with database.routed_to(self.db), connected(self.db), self.db.atomic("IMMEDIATE"):
            yield

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """One read transaction: a consistent snapshot, no write lock (WAL readers never wait)."""
        with database.routed_to(self.db), connected(self.db):
            if self.db.in_transaction():
                yield
                return
            with self.db.atomic("DEFERRED"):
                yield

    # -- TaskManager -------------------------------------------------------

    def create_task(self, part_count: int, **columns: Sequence[Any]) -> None:
        """Create parts ``0 .. part_count - 1``; `TaskAlreadyCreatedError` if there are parts.

        ``columns`` (our extension) gives a subclass's own columns, one value
        per part: ``create_task(3, salt=["a", "b", "c"])``.
        """
        if isinstance(part_count, bool) or not isinstance(part_count, int) or part_count < 0:
            raise ValueError(f"part_count must be a non-negative integer, got {part_count!r}")
        for name, values in columns.items():
            if len(values) != part_count:
                raise ValueError(f"{name} has {len(values)} values for {part_count} parts")
        with self.transaction():
            if self._part.select().exists():
                raise TaskAlreadyCreatedError(f"the task in {self.work_dir.name} has parts already")
            rows = ({"num": num, **{k: v[num] for k, v in columns.items()}}
                    for num in range(part_count))
            for batch in peewee.chunked(rows, _INSERT_BATCH):
                self._part.insert_many(batch).execute()

    def abort_task(self) -> None:
        """Mark every current subtask that has not succeeded ABORTED."""
        with self.transaction():
            current = self._part.select(self._part.subtask).where(self._part.subtask.is_null(False))
            (self._subtask.update(status=SubtaskStatus.ABORTED)
             .where(self._subtask.id.in_(current)
                    & (self._subtask.status.is_null()
                       | (self._subtask.status != SubtaskStatus.SUCCESS)))
             .execute())

    def get_part(self, part_num: int) -> Part | None:
        """The part numbered ``part_num`` (an instance of ``part_model``), or None."""
        with self.reading():
            return self._part.get_or_none(self._part.num == part_num)

    def get_part_num(self, subtask_id: str) -> int | None:
        """The number of the part subtask ``subtask_id`` computes, or None if unknown."""
        S = self._subtask
        with self.reading():
            row = self.query(
                "part of subtask",
                lambda: S.select(S.part).where(S.id == slot("id")),
                id=subtask_id).fetchone()
        return None if row is None else row[0]

    def get_subtask(self, subtask_id: str) -> Subtask | None:
        """The subtask ``subtask_id`` (an instance of ``subtask_model``), or None."""
        with self.reading():
            return self._subtask.get_or_none(self._subtask.id == subtask_id)

    def start_subtask(self, part_num: int, subtask_id: str, **fields: Any) -> None:
        """Start COMPUTING subtask ``subtask_id`` as the current one of part ``part_num``.

        Raises `UnknownPartError`, `SubtaskExistsError`, or
        `PartNotComputableError` if the part's current subtask is computing,
        verifying or succeeded; then nothing changes. ``fields`` (our
        extension) fills a subclass's own columns of the new subtask.
        """
        P, S = self._part, self._subtask
        with self.transaction():
            part = self.query(
                "current subtask of part",
                lambda: P.select(P.subtask).where(P.num == slot("num")),
                num=part_num).fetchone()
            if part is None:
                raise UnknownPartError(f"no part {part_num}")
            if self.query("subtask exists",
                          lambda: S.select(S.id).where(S.id == slot("id")),
                          id=subtask_id).fetchone():
                raise SubtaskExistsError(f"subtask {subtask_id!r} was started already")
            status = self._status_of(part[0])
            if not status.is_computable():
                raise PartNotComputableError(
                    f"part {part_num} is {status.name} (subtask {part[0]})")
            columns = sorted(fields)
            row = {"id": subtask_id, "part": part_num,
                   "status": S.status.db_value(SubtaskStatus.COMPUTING),
                   **{name: getattr(S, name).db_value(fields[name]) for name in columns}}
            self.query(
                ("start subtask", *columns),
                lambda: S.insert({getattr(S, name): peewee.Value(slot(name)) for name in row}),
                **row)
            self.query(
                "make current",
                lambda: (P.update({P.subtask: peewee.Value(slot("id"))})
                         .where(P.num == slot("num"))),
                id=subtask_id, num=part_num)

    def update_subtask_status(self, subtask_id: str, status: SubtaskStatus) -> None:
        """Set the status of subtask ``subtask_id``; `UnknownSubtaskError` if there is none."""
        S = self._subtask
        with self.transaction():
            changed = self.query(
                "set status",
                lambda: (S.update({S.status: peewee.Value(slot("status"))})
                         .where(S.id == slot("id"))),
                status=S.status.db_value(status), id=subtask_id).rowcount
            if not changed:
                raise UnknownSubtaskError(f"no subtask {subtask_id!r}")

    def get_subtasks_statuses(
        self, part_nums: Iterable[int],
    ) -> dict[int, tuple[SubtaskStatus, str | None]]:
        """For each existing part number: (current subtask's status, its id), (WAITING, None) if none."""
        nums = list(part_nums)
        with self.reading():
            rows = (self._part
                    .select(self._part.num, self._subtask.id, self._subtask.status)
                    .join(self._subtask, peewee.JOIN.LEFT_OUTER,
                          on=(self._part.subtask == self._subtask.id))
                    .where(self._part.num.in_(nums)).tuples())
            result = {}
            for num, sid, status in rows:
                if sid is None:
                    result[num] = (SubtaskStatus.WAITING, None)
                else:
                    result[num] = (self._subtask.status.python_value(status), sid)
        return result

    def get_next_computable_part_num(self) -> int | None:
        """The lowest-numbered part whose current subtask is absent, FAILURE or ABORTED."""
        with self.reading():
            return self._next_computable()

    # -- for subclasses ----------------------------------------------------

    def _next_computable(self) -> int | None:
        P, S = self._part, self._subtask
        row = self.query(
            "next computable part",
            lambda: (P.select(P.num)
                     .join(S, peewee.JOIN.LEFT_OUTER, on=(P.subtask == S.id))
                     .where(S.id.is_null() | S.status.in_(_COMPUTABLE))
                     .order_by(P.num).limit(1))).fetchone()
        return None if row is None else row[0]

    def _status_of(self, subtask_id: str | None) -> SubtaskStatus:
        if subtask_id is None:
            return SubtaskStatus.WAITING
        S = self._subtask
        row = self.query(
            "status of subtask",
            lambda: S.select(S.status).where(S.id == slot("id")),
            id=subtask_id).fetchone()
        if row is None:
            return SubtaskStatus.WAITING
        return S.status.python_value(row[0])


__all__ = ["DB_FILE_NAME", "BaseModel", "DBTaskManager", "Part", "Subtask"]
