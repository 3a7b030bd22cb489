"""Path types for the requestor and provider directory layouts."""
from __future__ import annotations

from pathlib import Path

from golem_task_api import constants

_UNSAFE_CHARS = ("/", "\\", "\0")


def is_safe_path_component(name: str) -> bool:
    """True iff name can be used as one directory entry without escaping its parent."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in _UNSAFE_CHARS)


# Subclassing Path itself only works from Python 3.12; the concrete flavour works on 3.11.
_ConcretePath = type(Path())


class RequestorDir(_ConcretePath):  # type: ignore[valid-type, misc]
    """The requestor app's work dir: one subdirectory per task."""

    def task_dir(self, task_id: str) -> "RequestorTaskDir":
        """The directory of one task."""
        return RequestorTaskDir(self / task_id)


class RequestorTaskDir(_ConcretePath):  # type: ignore[valid-type, misc]
    """One task's directory on the requestor side."""

    @property
    def task_inputs_dir(self) -> Path:
        return Path(self, constants.TASK_INPUTS_DIR)

    @property
    def task_outputs_dir(self) -> Path:
        return Path(self, constants.TASK_OUTPUTS_DIR)

    @property
    def subtask_inputs_dir(self) -> Path:
        return Path(self, constants.SUBTASK_INPUTS_DIR)

    @property
    def subtask_outputs_root(self) -> Path:
        return Path(self, constants.SUBTASK_OUTPUTS_DIR)

    def subtask_outputs_dir(self, subtask_id: str) -> Path:
        """Where the node places a provider's result for subtask_id."""
        return Path(self, constants.SUBTASK_OUTPUTS_DIR, subtask_id)

    def prepare(self) -> None:
        """Create the task dir and its four empty subdirectories, as the node does."""
        for path in (
            self.task_inputs_dir,
            self.task_outputs_dir,
            self.subtask_inputs_dir,
            self.subtask_outputs_root,
        ):
            path.mkdir(parents=True, exist_ok=True)


class ProviderDir(_ConcretePath):  # type: ignore[valid-type, misc]
    """Alias kept for symmetry: the provider's work dir is its task dir."""

    def task_dir(self, task_id: str) -> "ProviderTaskDir":
        """The directory of one task on the provider side."""
        return ProviderTaskDir(self / task_id)


class ProviderTaskDir(_ConcretePath):  # type: ignore[valid-type, misc]
    """The provider app's work dir for one task."""

    @property
    def subtask_inputs_dir(self) -> Path:
        return Path(self, constants.SUBTASK_INPUTS_DIR)

    def subtask_dir(self, subtask_id: str) -> Path:
        """Scratch and output directory of one subtask."""
        return Path(self, subtask_id)

    def prepare(self) -> None:
        """Create the provider work dir and its subtask_inputs/."""
        self.subtask_inputs_dir.mkdir(parents=True, exist_ok=True)
