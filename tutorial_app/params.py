"""Validation of the app's task params and of names that come from outside.

Every check raises `InvalidParamsError` (a `ValueError`, so the Task API
answers INVALID_ARGUMENT) with a message naming the field and what is wrong.
Nothing here writes anything.
"""
from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutorial_app import meta

log = logging.getLogger(__name__)

MAX_DIFFICULTY = 256
"""2**(256 - 256) = 1: no digest qualifies; useful to test interruption."""

MAX_NAME_BYTES = 200
"""Longest file name or subtask id accepted, in UTF-8 bytes: with ``.zip`` and a
temporary file's affixes it stays under the usual 255-byte file name limit."""

_KNOWN_KEYS = frozenset({"difficulty", "subtasks_count", "resources"})


class InvalidParamsError(ValueError):
    """Task params, subtask params or a file name that cannot be accepted."""


@dataclass(frozen=True)
class TaskParams:
    """The validated task params."""

    difficulty: int
    subtasks_count: int
    resource: str
    """The one input file in ``task_inputs/`` the parts are made from."""


def parse_task_params(raw: Any, max_subtasks_count: int) -> TaskParams:
    """Check the task params JSON object against the node's ``max_subtasks_count``.

    ``difficulty`` is required; ``subtasks_count`` defaults to
    ``max_subtasks_count``; ``resources`` must name exactly one input file.
    Unknown keys are ignored (with a warning) so newer nodes' extras pass.
    """
    if not isinstance(raw, dict):
        raise InvalidParamsError(f"task params must be a JSON object, not {_kind(raw)}")
    unknown = sorted(set(raw) - _KNOWN_KEYS)
    if unknown:
        log.warning("ignoring unknown task params: %s", ", ".join(map(str, unknown)))
    max_count = check_int("max_subtasks_count", max_subtasks_count, 1, None)
    if "difficulty" not in raw:
        raise InvalidParamsError("difficulty is required (an integer 0..256)")
    difficulty = check_difficulty(raw["difficulty"])
    if raw.get("subtasks_count") is None:
        count = max_count
    else:
        count = check_int("subtasks_count", raw["subtasks_count"], 1, max_count)
    if count > meta.MAX_PARTS:
        raise InvalidParamsError(
            f"subtasks_count={count} is more than this app supports ({meta.MAX_PARTS});"
            " pass a smaller subtasks_count")
    return TaskParams(difficulty, count, _one_resource(raw.get("resources")))


def check_difficulty(value: Any) -> int:
    """Return ``value`` if it is an integer difficulty 0..256, else raise."""
    return check_int("difficulty", value, 0, MAX_DIFFICULTY)


def check_int(name: str, value: Any, low: int, high: int | None) -> int:
    """Return ``value`` if it is an int (not a bool) in [low, high], else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParamsError(f"{name} must be an integer, not {_kind(value)} {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise InvalidParamsError(f"{name}={value} is out of range ({bounds})")
    return value


def check_file_name(kind: str, name: Any) -> str:
    """Return ``name`` if it is one plain file name (no directory part), else raise."""
    if not isinstance(name, str):
        raise InvalidParamsError(f"{kind} name must be a string, not {_kind(name)}")
    if name in ("", ".", ".."):
        raise InvalidParamsError(f"{kind} name {name!r} is not a file name")
    bad = [c for c in ("/", "\\", "\0") if c in name]
    if bad or os.path.isabs(name):
        raise InvalidParamsError(
            f"{kind} name {name!r} must be a plain file name inside its directory"
            " (no path separators, no absolute path)")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise InvalidParamsError(
            f"{kind} name {name[:40]!r}... has {size} bytes; the limit is {MAX_NAME_BYTES}")
    return name


def read_input_file(directory: Path, name: str, max_bytes: int = meta.MAX_INPUT_BYTES) -> str:
    """Read the input file ``directory/name`` as UTF-8 text, checking it first.

    It must be a regular file (a symlink could point outside the task dir),
    at most ``max_bytes`` long, and valid UTF-8.
    """
    check_file_name("resource", name)
    path = directory / name
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise InvalidParamsError(f"resource {name!r} is not in {directory.name}/") from None
    if not stat.S_ISREG(st.st_mode):
        what = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise InvalidParamsError(f"resource {name!r} is {what}")
    if st.st_size > max_bytes:
        raise InvalidParamsError(
            f"resource {name!r} has {st.st_size} bytes; the limit is {max_bytes}")
    with open(path, "rb") as f:
        # Bounded even if the file grew after lstat.
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InvalidParamsError(f"resource {name!r} is larger than {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParamsError(
            f"resource {name!r} is not UTF-8 text (byte {exc.start})") from None


def _one_resource(value: Any) -> str:
    if value is None:
        raise InvalidParamsError(
            "resources is required: a list naming the one input file in task_inputs/")
    if not isinstance(value, list):
        raise InvalidParamsError(f"resources must be a list of file names, not {_kind(value)}")
    if len(value) != 1:
        raise InvalidParamsError(
            f"resources must name exactly one input file, got {len(value)}")
    return check_file_name("resource", value[0])


def _kind(value: Any) -> str:
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "a list", dict: "an object", type(None): "null",
    }.get(type(value), type(value).__name__)
