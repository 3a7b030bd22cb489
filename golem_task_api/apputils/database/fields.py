"""Peewee fields the task models use."""
from __future__ import annotations

import enum
from typing import Any

import peewee


class EnumField(peewee.CharField):
    """A `CharField` storing an `enum.Enum` member by its value (``None`` stays NULL)."""

    def __init__(self, enum_type: type[enum.Enum], *args: Any, **kwargs: Any) -> None:
        """Store members of ``enum_type``; other args as for `peewee.CharField`."""
        if any(member.value is None for member in enum_type):
            # A member valued None (e.g. SubtaskStatus.WAITING) is stored as NULL.
            kwargs.setdefault("null", True)
        super().__init__(*args, **kwargs)
        self.enum_type = enum_type

    def db_value(self, value: Any) -> Any:
        """The member's value as text (a bare value of a member is accepted too)."""
        if value is None:
            return None
        member = value if isinstance(value, self.enum_type) else self.enum_type(value)
        return None if member.value is None else super().db_value(str(member.value))

    def python_value(self, value: Any) -> enum.Enum | None:
        """The member stored; NULL is the member valued None if there is one."""
        if value is None:
            try:
                return self.enum_type(None)
            except ValueError:
                return None
        try:
            return self.enum_type(value)
        except ValueError:
            # Non-string values come back as text.
            for member in self.enum_type:
                if str(member.value) == value:
                    return member
            raise


__all__ = ["EnumField"]
