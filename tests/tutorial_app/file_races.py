"""Deterministic file-system races for the readers' tests.

`swap_at_open` replaces a file just before the reader opens it: after any
check the reader made on the path, before the open. A reader that trusts an
earlier ``lstat`` then reads whatever was swapped in; a reader that checks
the opened file does not.
"""
from __future__ import annotations

import builtins
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def swap_at_open(
    monkeypatch: pytest.MonkeyPatch, target: Path, swap: Callable[[Path], None],
    *modules: ModuleType,
) -> list[Path]:
    """Run ``swap(target)`` once, right before the first open of ``target``
    (or of a path under it, when ``target`` is a directory on the way).

    Hooks ``os.open`` and the builtin ``open`` as seen from ``modules``;
    returns the list the swapped path is appended to when the swap happened.
    """
    swapped: list[Path] = []

    def opens_target(path: Any, dir_fd: int | None) -> bool:
        if not isinstance(path, (str, os.PathLike)):
            return False
        opened = Path(path)
        if dir_fd is not None:
            # Relative to an open directory, as a reader that walks with openat does.
            opened = Path(os.readlink(f"/proc/self/fd/{dir_fd}")) / path
        return opened == target or target in opened.parents

    def hooked(real: Callable[..., Any]) -> Callable[..., Any]:
        def opener(path: Any, *args: Any, **kwargs: Any) -> Any:
            if not swapped and opens_target(path, kwargs.get("dir_fd")):
                swapped.append(target)
                swap(target)
            return real(path, *args, **kwargs)
        return opener

    monkeypatch.setattr(os, "open", hooked(os.open))
    for module in modules:
        monkeypatch.setattr(module, "open", hooked(builtins.open), raising=False)
    return swapped


def to_symlink(points_to: Path) -> Callable[[Path], None]:
    """A swap that replaces the file with a symlink to ``points_to``."""
    def swap(path: Path) -> None:
        path.unlink()
        path.symlink_to(points_to)
    return swap


def dir_to_symlink(points_to: Path) -> Callable[[Path], None]:
    """A swap that replaces a directory with a symlink to ``points_to``."""
    def swap(path: Path) -> None:
        shutil.rmtree(path)
        path.symlink_to(points_to)
    return swap


def to_fifo(path: Path) -> None:
    """A swap that replaces the file with a FIFO nobody writes to."""
    path.unlink()
    os.mkfifo(path)
