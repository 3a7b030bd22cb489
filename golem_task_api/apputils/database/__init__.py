"""The SQLite database apps' peewee models are bound through.

Models declare ``database`` (this module's) as their database. It is a
proxy: `initialize_database` points it at a SQLite file. Unlike a plain
peewee proxy it can point at a different file per thread for the length of
a ``with database.routed_to(db):`` block, so one process can serve several
tasks (each with its own ``task.db``) from several threads at once without
one task's query landing in another task's file. Outside such a block it
uses the file `initialize_database` opened last, as published apps expect.

Every connection runs with WAL (recorded in the file when its tables are
created), foreign keys on, ``synchronous=FULL`` (a committed verdict
survives a power cut, not only a kill) and a busy timeout, so writers in
several processes queue instead of failing. Pragmas already in force are
not set again: a pragma that touches the file costs more than a short query.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import peewee

BUSY_TIMEOUT_SECONDS = 30.0
"""How long a writer waits for another process's write transaction."""

PRAGMAS: dict[str, Any] = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "full",
    "busy_timeout": int(BUSY_TIMEOUT_SECONDS * 1000),
}
"""In force on every connection of a `TaskDatabase`."""

_SYNCHRONOUS_FULL = 2


class TaskDatabase(peewee.SqliteDatabase):
    """A `peewee.SqliteDatabase` whose connections get `PRAGMAS` cheaply.

    The busy timeout is the driver's connect timeout; journal_mode is
    persistent, set by `initialize_database`; synchronous is set only where
    the library's default is weaker than FULL.
    """

    def __init__(self, db_path: Path | str | None) -> None:
        """A database for the file ``db_path`` (None: set later with ``init``)."""
        super().__init__(None if db_path is None else os.fspath(db_path),
                         timeout=BUSY_TIMEOUT_SECONDS, pragmas={"foreign_keys": 1})

    def _set_pragmas(self, conn: Any) -> None:
        conn.execute("PRAGMA foreign_keys = 1")
        if conn.execute("PRAGMA synchronous").fetchone()[0] < _SYNCHRONOUS_FULL:
            conn.execute("PRAGMA synchronous = FULL")


class RoutedDatabase(peewee.DatabaseProxy):
    """A `peewee.DatabaseProxy` whose target can be overridden per thread."""

    __slots__ = ("_default", "_local")

    def __init__(self) -> None:
        object.__setattr__(self, "_local", threading.local())
        object.__setattr__(self, "_default", None)
        super().__init__()

    def __setattr__(self, attr: str, value: Any) -> None:
        # peewee's Proxy only allows its own slots; ours add two.
        object.__setattr__(self, attr, value)

    @property  # type: ignore[override]
    def obj(self) -> peewee.Database | None:
        """The database queries of this thread go to."""
        routed = getattr(self._local, "db", None)
        return routed if routed is not None else self._default

    @obj.setter
    def obj(self, value: peewee.Database | None) -> None:
        object.__setattr__(self, "_default", value)

    @contextlib.contextmanager
    def routed_to(self, db: peewee.Database) -> Iterator[peewee.Database]:
        """Send this thread's queries through the proxy to ``db`` inside the block."""
        previous = getattr(self._local, "db", None)
        self._local.db = db
        try:
            yield db
        finally:
            self._local.db = previous


database = RoutedDatabase()
"""The database `Part`, `Subtask` and apps' own models are bound through."""


_SLOT_PREFIX = "\x00apputils-slot:"


def slot(name: str) -> str:
    """A placeholder for the value ``name`` in a query compiled once by `CompiledQueries`."""
    return f"{_SLOT_PREFIX}{name}"


class CompiledQueries:
    """Queries built with peewee once, then run as SQL: building one costs far more than running it.

    ``run(key, build, **values)``: ``build()`` makes the query the first
    time ``key`` is seen, with `slot` placeholders where values differ from
    call to call; later calls reuse its SQL with ``values`` in the slots.
    Values go to SQLite as given, so pass what the column stores (an enum's
    value, not the member).
    """

    def __init__(self) -> None:
        self._sql: dict[object, tuple[str, list[Any]]] = {}
        self._lock = threading.Lock()

    def run(self, db: peewee.Database, key: object,
            build: Callable[[], peewee.Query], **values: Any) -> Any:
        """Execute the query ``key`` on ``db``; the cursor."""
        with self._lock:
            compiled = self._sql.get(key)
        if compiled is None:
            compiled = build().sql()
            with self._lock:
                self._sql[key] = compiled
        sql, params = compiled
        args = [values[p[len(_SLOT_PREFIX):]] if isinstance(p, str) and p.startswith(_SLOT_PREFIX)
                else p for p in params]
        return db.execute_sql(sql, args)


_shared: dict[str, "TaskDatabase"] = {}
_shared_lock = threading.Lock()
_kept = threading.local()
_abandoned: list[peewee.Database] = []


def open_sqlite(db_path: Path) -> peewee.SqliteDatabase:
    """The process's peewee database for the SQLite file ``db_path`` (one per file)."""
    key = os.path.abspath(db_path)
    with _shared_lock:
        db = _shared.get(key)
        if db is None:
            db = _shared[key] = TaskDatabase(key)
    return db


@contextlib.contextmanager
def connected(db: peewee.Database) -> Iterator[None]:
    """This thread's connection to ``db`` for the block.

    A `TaskDatabase` connection stays open after the block, for the next
    call (opening one and its first read cost more than a short query);
    each thread keeps one at most, to the file it used last, so a process
    serving many tasks keeps few files open. It is reopened if the file was
    replaced since (a task dir deleted and made again). Any other database
    is connected for the block only.
    """
    if isinstance(db, TaskDatabase):
        _keep_connection(db)
        yield
        return
    opened = db.is_closed()
    if opened:
        db.connect()
    try:
        yield
    finally:
        if opened:
            db.close()


def _keep_connection(db: "TaskDatabase") -> None:
    kept = getattr(_kept, "db", None)
    if kept is not None and kept is not db and not kept.is_closed() and not kept.in_transaction():
        kept.close()
    identity = _identity(db.database)
    if not db.is_closed():
        if db.in_transaction() or (kept is db and identity == getattr(_kept, "identity", None)):
            return
        db.close()
    db.connect()
    _kept.db, _kept.identity = db, _identity(db.database)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _abandon_connections_after_fork() -> None:
    """In a forked child: never use (or close) a connection the parent opened.

    SQLite forbids carrying a connection across fork. The inherited objects
    stay referenced so they are never closed here either; new calls open
    their own.
    """
    _abandoned.extend(_shared.values())
    _shared.clear()
    _kept.__dict__.clear()
    database._local.__dict__.clear()
    object.__setattr__(database, "_default", None)


os.register_at_fork(after_in_child=_abandon_connections_after_fork)


def initialize_database(
    db: peewee.Database, db_path: Path, models: Iterable[type[peewee.Model]],
) -> peewee.Database:
    """Bind ``models`` to ``db``, point ``db`` at the SQLite file ``db_path``, create missing tables.

    ``db`` is usually the module-level `database` (a proxy); a plain peewee
    database is re-initialised at ``db_path`` instead. Returns the concrete
    database now behind ``db``. Tables already there are left alone without
    taking the write lock, so opening an existing file never waits for a writer.
    """
    models = list(models)
    if isinstance(db, peewee.Proxy):
        target: peewee.Database = open_sqlite(db_path)
        db.initialize(target)
    else:
        db.init(os.fspath(db_path), pragmas=PRAGMAS, timeout=BUSY_TIMEOUT_SECONDS)
        target = db
    for model in models:
        # Model.bind, not db.bind: a proxy would forward db.bind to its target,
        # binding the models to one file instead of through the proxy.
        model.bind(db, bind_refs=False, bind_backrefs=False)
    key = _file_key(db_path, models)
    with _ready_lock:
        if key is not None and key in _ready:
            return target
    route = database.routed_to(target) if db is database else contextlib.nullcontext()
    with route, connected(target):
        if isinstance(target, TaskDatabase):
            target.execute_sql("PRAGMA journal_mode = WAL")
        existing = set(target.get_tables())
        if any(m._meta.table_name not in existing for m in models):
            # One transaction: a kill leaves all the tables or none.
            with target.atomic("IMMEDIATE"):
                target.create_tables(models, safe=True)
    key = _file_key(db_path, models)
    if key is not None:
        with _ready_lock:
            _ready.add(key)
    return target


# Files known (in this process) to hold the tables: opening one again needs no
# connection. Keyed by the file's identity, so a file replaced or recreated
# under the same name is checked again.
_ready: set[tuple[object, ...]] = set()
_ready_lock = threading.Lock()


def _file_key(db_path: Path, models: list[type[peewee.Model]]) -> tuple[object, ...] | None:
    try:
        st = os.stat(db_path)
    except OSError:
        return None
    if st.st_size == 0:
        return None
    tables = tuple(sorted(m._meta.table_name for m in models))
    return (os.path.abspath(db_path), st.st_dev, st.st_ino, tables)


__all__ = [
    "BUSY_TIMEOUT_SECONDS", "PRAGMAS", "CompiledQueries", "RoutedDatabase", "TaskDatabase",
    "connected", "database", "initialize_database", "open_sqlite", "slot",
]
