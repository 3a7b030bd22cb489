"""The SQLite database apps' peewee models are bound through.

Models declare ``database`` (this module's) as their database. It is a
proxy: `initialize_database` points it at a SQLite file. Unlike a plain
peewee proxy it can point at a different file per thread for the length of
a ``with database.routed_to(db):`` block, so one process can serve several
tasks (each with its own ``task.db``) from several threads at once without
one task's query landing in another task's file. Outside such a block it
uses the file `initialize_database` opened last, as published apps expect.

Every connection runs with WAL, foreign keys on, ``synchronous=FULL`` (a
committed verdict survives a power cut, not only a kill) and a busy timeout,
so writers in several processes queue instead of failing.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator
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
"""Applied to every connection (WAL is also recorded in the file itself)."""


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


def open_sqlite(db_path: Path) -> peewee.SqliteDatabase:
    """A peewee database for the SQLite file ``db_path`` with the pragmas above."""
    return peewee.SqliteDatabase(
        os.fspath(db_path), pragmas=PRAGMAS, timeout=BUSY_TIMEOUT_SECONDS)


@contextlib.contextmanager
def connected(db: peewee.Database) -> Iterator[None]:
    """A connection of this thread to ``db`` for the block, closed after if opened here.

    Closing after each operation keeps no file open between RPCs, and a
    forked child never inherits a live SQLite connection.
    """
    opened = db.is_closed()
    if opened:
        db.connect()
    try:
        yield
    finally:
        if opened:
            db.close()


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
    "BUSY_TIMEOUT_SECONDS", "PRAGMAS", "RoutedDatabase", "connected", "database",
    "initialize_database", "open_sqlite",
]
