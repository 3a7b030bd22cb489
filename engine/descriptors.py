"""Letting go of what a forked process inherited, without freeing descriptor numbers.

A forked child inherits its parent's descriptors and its parent's Python
objects. One of those objects, collected in the child, closes the number it
owned; had the child closed that number first, it could by then be one of
the child's own (seen: an mmap of the node's multiprocessing heap closed a
provider's epoll fd). So a descriptor is released by pointing it at
/dev/null: what the parent opened is let go, and the number stays taken.
"""
from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Callable, Iterable


def inherited(keep: Iterable[int | None] = ()) -> list[int]:
    """The open descriptors above 2, but those in ``keep``."""
    kept = set(keep)
    try:
        numbers: Iterable[int] = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: every number the limit allows
        numbers = range(3, min(os.sysconf("SC_OPEN_MAX"), 1 << 16))
    return [fd for fd in numbers if fd > 2 and fd not in kept and _is_open(fd)]


def release(fds: Iterable[int], only: Callable[[int], bool] = lambda fd: True) -> None:
    """Point each of ``fds`` (those ``only`` accepts) at /dev/null."""
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for fd in fds:
            if fd != devnull and only(fd):
                os.dup2(devnull, fd, inheritable=False)
    finally:
        os.close(devnull)


def is_socket(fd: int) -> bool:
    """True for a socket (a socket pair's end included)."""
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def _is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False  # e.g. the listing's own descriptor, closed by now
    return True
