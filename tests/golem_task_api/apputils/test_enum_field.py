"""apputils.database.fields.EnumField: enums stored by value and read back."""
from __future__ import annotations

import enum
import sqlite3
from pathlib import Path

import peewee

from golem_task_api.apputils.database import database, initialize_database
from golem_task_api.apputils.database.fields import EnumField
from golem_task_api.apputils.task import SubtaskStatus


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


class Thing(peewee.Model):
    name = peewee.CharField(primary_key=True)
    colour = EnumField(Colour, null=True)
    level = EnumField(Level, default=Level.LOW)
    status = EnumField(SubtaskStatus, default=SubtaskStatus.WAITING)

    class Meta:
        database = database


def test_enum_members_round_trip_by_value(tmp_path: Path) -> None:
    db = initialize_database(database, tmp_path / "things.db", [Thing])
    with database.routed_to(db):
        Thing.create(name="a", colour=Colour.BLUE, level=Level.HIGH, status=SubtaskStatus.FAILURE)
        Thing.create(name="b")
        a = Thing.get(Thing.name == "a")
        b = Thing.get(Thing.name == "b")
        assert (a.colour, a.level, a.status) == (Colour.BLUE, Level.HIGH, SubtaskStatus.FAILURE)
        assert (b.colour, b.level, b.status) == (None, Level.LOW, SubtaskStatus.WAITING)
        assert [t.name for t in Thing.select().where(Thing.colour == Colour.BLUE)] == ["a"]
    db.close()
    raw = sqlite3.connect(tmp_path / "things.db")
    assert raw.execute("SELECT colour, level, status FROM thing ORDER BY name").fetchall() == [
        ("blue", "2", "failure"), (None, "1", None)]
    raw.close()
