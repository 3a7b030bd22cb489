"""Validation of the app's task params and of names that come from outside.

Every check raises `InvalidParamsError` (a `ValueError`, so the Task API
answers INVALID_ARGUMENT) with a message naming the field and what is wrong.
Messages show at most a short, shallow repr of what was sent, so a huge or
deeply nested value cannot blow them up (nor recurse while printing it).
Nothing here writes anything.

The app parses no JSON itself: the runtime hands it task and subtask params
already parsed (and bounds their size and depth at the server); what is
checked here is their shape and values. Shared rules have one home each:
the difficulty is `engine.pow`'s, a path component is
`golem_task_api.dirutils`'s, reading a file is `tutorial_app.files`'s.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import pow as proof_of_work
from golem_task_api.dirutils import is_safe_path_component

from tutorial_app import meta
from tutorial_app.files import FileReadError, FileTooLargeError, read_file_bounded

log = logging.getLogger(__name__)

MAX_DIFFICULTY = proof_of_work.MAX_DIFFICULTY
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
        raise InvalidParamsError(f"task params must be a JSON object, not {proof_of_work.describe_kind(raw)}")
    unknown = sorted(set(raw) - _KNOWN_KEYS)
    if unknown:
        shown = ", ".join(_shown(key) for key in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        log.warning("ignoring unknown task params: %s%s", shown, more)
    max_count = check_int("max_subtasks_count", max_subtasks_count, 1, None)
    if "difficulty" not in raw:
        raise InvalidParamsError(
            f"difficulty is required (an integer {proof_of_work.MIN_DIFFICULTY}..{MAX_DIFFICULTY})")
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
    """The difficulty ``value`` (sent as JSON) stands for, as an int; else raise.

    The rule is `engine.pow.parse_difficulty`'s: an int in 0..256, or an
    integral float such as ``16.0`` (published requestors send floats);
    a fraction, NaN, infinity, a bool or a string is refused.
    """
    try:
        return proof_of_work.parse_difficulty(value)
    except proof_of_work.InvalidDifficultyError as exc:
        raise InvalidParamsError(str(exc)) from None


def check_int(name: str, value: Any, low: int, high: int | None) -> int:
    """Return ``value`` if it is an int (not a bool) in [low, high], else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParamsError(
            f"{name} must be an integer, not {proof_of_work.describe_kind(value)} {_shown(value)}")
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise InvalidParamsError(f"{name}={_shown(value)} is out of range ({bounds})")
    return value


def check_file_name(kind: str, name: Any) -> str:
    """Return ``name`` if it is one plain file name (no directory part), else raise."""
    if not isinstance(name, str):
        raise InvalidParamsError(f"{kind} name must be a string, not {proof_of_work.describe_kind(name)} {_shown(name)}")
    if not is_safe_path_component(name):
        if name in ("", ".", ".."):
            raise InvalidParamsError(f"{kind} name {_shown(name)} is not a file name")
        raise InvalidParamsError(
            f"{kind} name {_shown(name)} must be a plain file name inside its directory"
            " (no path separators, no NUL)")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise InvalidParamsError(
            f"{kind} name {_shown(name)} has {size} bytes; the limit is {MAX_NAME_BYTES}")
    return name


def read_input_file(directory: Path, name: str, max_bytes: int = meta.MAX_INPUT_BYTES) -> str:
    """Read the input file ``directory/name`` as UTF-8 text, checking it as it is read.

    It must be a regular file (a symlink could point outside the task dir;
    a FIFO could block), at most ``max_bytes`` long, and valid UTF-8. The
    checks are `tutorial_app.files.read_file_bounded`'s, made on the opened
    file: replacing the file after any earlier look at it gains nothing.
    """
    check_file_name("resource", name)
    try:
        data = read_file_bounded(directory / name, max_bytes)
    except (FileNotFoundError, NotADirectoryError):
        raise InvalidParamsError(f"resource {name!r} is not in {directory.name}/") from None
    except FileTooLargeError:
        raise InvalidParamsError(
            f"resource {name!r} has more than {max_bytes} bytes; the limit is {max_bytes}") from None
    except FileReadError as exc:  # not a regular file
        raise InvalidParamsError(f"resource {exc}") from None
    except PermissionError:
        raise InvalidParamsError(f"resource {name!r} cannot be read (permission denied)") from None
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
        raise InvalidParamsError(
            f"resources must be a list of file names, not {proof_of_work.describe_kind(value)} {_shown(value)}")
    if len(value) != 1:
        raise InvalidParamsError(
            f"resources must name exactly one input file, got {len(value)}")
    return check_file_name("resource", value[0])



def _shown(value: Any) -> str:
    """A short repr for messages: bounded in length and nesting."""
    return proof_of_work.short_repr(value)
