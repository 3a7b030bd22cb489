"""The app's file primitives: the one bounded reader and the one atomic writer.

Reading: files that come from outside (regular files only, bounded).

Task inputs (placed by the node), subtask inputs (sent by a requestor) and
results (sent by a provider) are all read through `read_file_bounded`. It
makes every check on the file it has opened, never on the path before
opening it, so a file swapped for a symlink or a FIFO between a check and
the read gains nothing.

Writing: `write_atomically` makes a file appear whole or not at all (a temp
file renamed into place); a reader, or a restart after a kill, never sees
half of it.
"""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

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


def read_file_bounded(path: Path, max_bytes: int, dir_fd: int | None = None) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes`` of them.

    With ``dir_fd``, ``path`` is relative to that open directory (see `open_dir_under`).

    Raises `NotARegularFileError` for anything but a regular file (a symlink
    is not followed: it could point anywhere, /etc/passwd included),
    `FileTooLargeError` past ``max_bytes`` (without reading a file whose size
    already says so), and `OSError` as ``open`` does otherwise
    (`FileNotFoundError` when there is no file). Messages name the file by
    its last component only, never by its full path.
    """
    try:
        fd = os.open(path, _FLAGS, dir_fd=dir_fd)
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


class UnsafePathError(ValueError):
    """A relative path that is absolute, empty or steps out of its directory."""


def open_dir_under(base: Path, parts: Sequence[str]) -> int:
    """An open descriptor of directory ``base/parts...``, no symlink followed on the way.

    Each component is opened relative to the one before (``O_NOFOLLOW``), so
    a directory swapped for a symlink while this runs is refused (ELOOP or
    ENOTDIR), never followed out of ``base``. `UnsafePathError` for an empty,
    ``.`` or ``..`` component; the caller closes the descriptor.
    """
    for part in parts:
        if part in ("", ".", "..") or "/" in part:
            raise UnsafePathError(f"{part!r} is not a directory name")
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _too_large(path: Path, max_bytes: int) -> str:
    return f"{path.name} is larger than {max_bytes} bytes (the limit)"


def write_atomically(
    target: Path,
    content: bytes | Callable[[BinaryIO], None],
    *,
    durable: bool = True,
    temp_dir: Path | None = None,
    before_replace: Callable[[], None] | None = None,
) -> None:
    """Write ``content`` (bytes, or a function writing to the open file) to ``target`` atomically.

    ``durable`` fsyncs the data before the rename: needed when a database
    commit will point at the file, wasted on a progress report. The temp
    file lives in ``temp_dir`` (same file system) when given, else beside
    ``target``; it is removed when anything fails. ``before_replace`` runs
    between the written temp file and the rename (crash-injection tests).
    """
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=temp_dir or target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(content, bytes):
                f.write(content)
            else:
                content(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
