"""Check the app's work dir before serving, so a bad one costs one clear line.

A Golem node bind-mounts its shared directory at ``/golem/work`` and runs
the container as its own numeric uid (group 0). If that directory is
missing or the uid cannot write it, SQLite would fail much later with
"unable to open database file" and the provider only when it writes its
result; :func:`check_work_dir` says what is wrong, for whom, up front.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path


class WorkDirError(Exception):
    """The work dir cannot be used; ``str()`` is one line naming the dir, the uid/gid and the problem."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"work dir {path} {problem} (running as {_identity()})")


class MissingWorkDirError(WorkDirError):
    """The work dir does not exist or is not a directory."""


class UnwritableWorkDirError(WorkDirError):
    """The work dir exists but this process may not create files in it."""


def check_work_dir(path: Path) -> None:
    """Raise a :class:`WorkDirError` unless ``path`` is a directory this process can use.

    "Usable" is: a directory (symlinks followed, as the app follows them)
    that this uid may list, enter and create files in.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise MissingWorkDirError(path, "does not exist") from None
    except OSError as exc:
        raise MissingWorkDirError(path, f"cannot be examined: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise MissingWorkDirError(path, "is not a directory")
    # os.access asks the kernel with the real ids, which is who the app runs
    # as: it accounts for group 0, ACLs and read-only mounts alike.
    if os.access(path, os.R_OK | os.W_OK | os.X_OK):
        return
    if _read_only_mount(path):
        raise UnwritableWorkDirError(path, "is not writable: it is on a read-only mount")
    raise UnwritableWorkDirError(
            path,
            f"is not writable: owned by uid {info.st_uid} gid {info.st_gid}, "
            f"mode {stat.filemode(info.st_mode)}",
        )


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False


def _identity() -> str:
    if not hasattr(os, "getuid"):
        return "this user"
    return f"uid {os.getuid()} gid {os.getgid()}"


__all__ = ["MissingWorkDirError", "UnwritableWorkDirError", "WorkDirError", "check_work_dir"]
