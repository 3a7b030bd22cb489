"""Path types for the requestor and provider directory layouts.

Each is a concrete `pathlib` path, so a `ProviderTaskDir` *is* a `Path`
(`/` on it gives a plain `Path`) with the layout's names as properties.
"""
from __future__ import annotations

import os
from pathlib import Path

from golem_task_api import constants

_UNSAFE_CHARS = ("/", "\\", "\0")


def is_safe_path_component(name: str) -> bool:
    """True iff name can be used as one directory entry without escaping its parent."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in _UNSAFE_CHARS)


# Subclassing Path itself only works from Python 3.12; the concrete flavour works on 3.11.
_PlatformPath = type(Path())


class _ConcretePath(_PlatformPath):  # type: ignore[valid-type, misc]
    """A path whose children are plain paths: `task_dir / "x"` is not another task dir."""

    def __truediv__(self, key: "str | os.PathLike[str]") -> Path:
        return Path(self.__fspath__(), key)

    def joinpath(self, *pathsegments: "str | os.PathLike[str]") -> Path:
        return Path(self.__fspath__(), *pathsegments)


class RequestorDir(_ConcretePath):
    """The requestor app's work dir: one subdirectory per task."""

    def task_dir(self, task_id: str) -> "RequestorTaskDir":
        """The directory of one task."""
        return RequestorTaskDir(self, task_id)

    def subtask_outputs_dir(self, task_id: str, subtask_id: str) -> Path:
        """Where the node places a provider's result for subtask_id of task_id."""
        return self.task_dir(task_id).subtask_outputs_dir(subtask_id)


class RequestorTaskDir(_ConcretePath):
    """One task's directory on the requestor side."""

    @property
    def task_inputs_dir(self) -> Path:
        """The user's resources, copied in by the node before CreateTask."""
        return Path(self, constants.TASK_INPUTS_DIR)

    @property
    def task_outputs_dir(self) -> Path:
        """The merged results of verified subtasks."""
        return Path(self, constants.TASK_OUTPUTS_DIR)

    @property
    def subtask_inputs_dir(self) -> Path:
        """Resources the app names in NextSubtask replies."""
        return Path(self, constants.SUBTASK_INPUTS_DIR)

    @property
    def subtask_outputs_top_dir(self) -> Path:
        """The parent of every subtask's result directory."""
        return Path(self, constants.SUBTASK_OUTPUTS_DIR)

    # Our earlier name of subtask_outputs_top_dir.
    subtask_outputs_root = subtask_outputs_top_dir

    def subtask_outputs_dir(self, subtask_id: str) -> Path:
        """Where the node places a provider's result for subtask_id."""
        return Path(self, constants.SUBTASK_OUTPUTS_DIR, subtask_id)

    def prepare(self) -> None:
        """Create the task dir and its four empty subdirectories, as the node does."""
        for path in (
            self.task_inputs_dir,
            self.task_outputs_dir,
            self.subtask_inputs_dir,
            self.subtask_outputs_top_dir,
        ):
            path.mkdir(parents=True, exist_ok=True)


class ProviderDir(_ConcretePath):
    """A provider node's dir holding one work dir per task."""

    def task_dir(self, task_id: str) -> "ProviderTaskDir":
        """The directory of one task on the provider side."""
        return ProviderTaskDir(self, task_id)

    def subtask_dir(self, task_id: str, subtask_id: str) -> Path:
        """Scratch and output directory of one subtask of task_id."""
        return self.task_dir(task_id).subtask_dir(subtask_id)


class ProviderTaskDir(_ConcretePath):
    """The provider app's work dir for one task."""

    @property
    def subtask_inputs_dir(self) -> Path:
        """Resources the node copied from the requestor for this provider."""
        return Path(self, constants.SUBTASK_INPUTS_DIR)

    def subtask_dir(self, subtask_id: str) -> Path:
        """Scratch and output directory of one subtask."""
        return Path(self, subtask_id)

    def prepare(self) -> None:
        """Create the provider work dir and its subtask_inputs/."""
        self.subtask_inputs_dir.mkdir(parents=True, exist_ok=True)
