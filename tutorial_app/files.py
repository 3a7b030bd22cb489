"""The app's one reader of files that come from outside: regular files only, bounded.

Task inputs (placed by the node), subtask inputs (sent by a requestor) and
results (sent by a provider) are all read through `read_file_bounded`. It
makes every check on the file it has opened, never on the path before
opening it, so a file swapped for a symlink or a FIFO between a check and
the read gains nothing.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

# O_NOFOLLOW: a symlink in the last component fails the open instead of
# leading outside the directory. O_NONBLOCK: opening a FIFO does not wait
# for a writer (the opened FIFO is then refused by the fstat check).
_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)

_KINDS = (
    (stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
)


class FileReadError(ValueError):
    """A file that cannot be accepted as input (its path was fine)."""


class NotARegularFileError(FileReadError):
    """The path is a symlink, directory, FIFO, socket or device, not a regular file."""


class FileTooLargeError(FileReadError):
    """The file holds more bytes than the caller's limit."""


def read_file_bounded(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes`` of them.

    Raises `NotARegularFileError` for anything but a regular file (a symlink
    is not followed: it could point anywhere, /etc/passwd included),
    `FileTooLargeError` past ``max_bytes`` (without reading a file whose size
    already says so), and `OSError` as ``open`` does otherwise
    (`FileNotFoundError` when there is no file). Messages name the file by
    its last component only, never by its full path.
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotARegularFileError(f"{path.name} is a symlink, not a regular file") from None
        if exc.errno == errno.ENXIO:  # a socket (or a device with nothing behind it)
            raise NotARegularFileError(f"{path.name} is a socket, not a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "special file")
            raise NotARegularFileError(f"{path.name} is a {kind}, not a regular file")
        if st.st_size > max_bytes:
            raise FileTooLargeError(_too_large(path, max_bytes))
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        # The file may grow after fstat: read one byte past the limit to see it.
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLargeError(_too_large(path, max_bytes))
    return data


def _too_large(path: Path, max_bytes: int) -> str:
    return f"{path.name} is larger than {max_bytes} bytes (the limit)"
