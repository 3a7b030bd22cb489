"""Task state as apps see it: subtask statuses and the task manager interface."""
from __future__ import annotations

import abc
import enum
from typing import Any


class SubtaskStatus(enum.Enum):
    """Where the current subtask of a part is; WAITING means the part has none."""

    WAITING = None
    COMPUTING = "computing"
    VERIFYING = "verifying"
    SUCCESS = "success"
    FAILURE = "failure"
    ABORTED = "aborted"

    @classmethod
    def default(cls) -> "SubtaskStatus":
        """The status of a part no subtask was started for."""
        return cls.WAITING

    def is_computable(self) -> bool:
        """True if a part whose current subtask is in this status may be given out again."""
        return self in (SubtaskStatus.WAITING, SubtaskStatus.FAILURE, SubtaskStatus.ABORTED)


class TaskManagerError(Exception):
    """A task manager call that cannot be carried out; nothing was changed."""


class TaskAlreadyCreatedError(TaskManagerError):
    """`TaskManager.create_task` was called for a task that has parts already."""


class UnknownPartError(TaskManagerError, LookupError):
    """No part with this number."""


class UnknownSubtaskError(TaskManagerError, LookupError):
    """No subtask with this id was started."""


class SubtaskExistsError(TaskManagerError):
    """A subtask with this id was started already."""


class PartNotComputableError(TaskManagerError):
    """The part's current subtask is computing, being verified or succeeded."""


class TaskManager(abc.ABC):
    """A task split into numbered parts, each computed by a sequence of subtasks.

    A part has at most one *current* subtask. It may be given to a new
    subtask while that one is absent, FAILURE or ABORTED.
    """

    @abc.abstractmethod
    def create_task(self, part_count: int) -> None:
        """Create parts ``0 .. part_count - 1``, none started."""

    @abc.abstractmethod
    def abort_task(self) -> None:
        """Mark every current subtask that has not succeeded ABORTED."""

    @abc.abstractmethod
    def get_part(self, part_num: int) -> Any:
        """The part numbered ``part_num``, or None."""

    @abc.abstractmethod
    def get_part_num(self, subtask_id: str) -> int | None:
        """The number of the part subtask ``subtask_id`` computes, or None."""

    @abc.abstractmethod
    def get_subtask(self, subtask_id: str) -> Any:
        """The subtask ``subtask_id``, or None."""

    @abc.abstractmethod
    def start_subtask(self, part_num: int, subtask_id: str) -> None:
        """Make a new COMPUTING subtask ``subtask_id`` the current one of part ``part_num``."""

    @abc.abstractmethod
    def update_subtask_status(self, subtask_id: str, status: SubtaskStatus) -> None:
        """Set the status of subtask ``subtask_id``."""

    @abc.abstractmethod
    def get_subtasks_statuses(
        self, part_nums: list[int],
    ) -> dict[int, tuple[SubtaskStatus, str | None]]:
        """For each part number: its current subtask's status and id ((WAITING, None) if none)."""

    @abc.abstractmethod
    def get_next_computable_part_num(self) -> int | None:
        """The lowest-numbered part that may be given to a new subtask, or None."""


__all__ = [
    "PartNotComputableError", "SubtaskExistsError", "SubtaskStatus", "TaskAlreadyCreatedError",
    "TaskManager", "TaskManagerError", "UnknownPartError", "UnknownSubtaskError",
]
