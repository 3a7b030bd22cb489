"""The one bounded reader of regular files (task inputs, subtask inputs, results)."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from file_races import swap_at_open, to_fifo, to_symlink
from tutorial_app import archive, files
from tutorial_app.files import FileReadError, FileTooLargeError, NotARegularFileError, read_file_bounded


def test_reads_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"12345")
    assert read_file_bounded(path, 5) == b"12345"
    assert read_file_bounded(path, 100) == b"12345"
    path.write_bytes(b"")
    assert read_file_bounded(path, 0) == b""


def test_too_large_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"123456")
    with pytest.raises(FileTooLargeError, match="big is larger than 5 bytes"):
        read_file_bounded(path, 5)
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(1 << 40)  # 1 TiB that takes no disk: reading it would take forever
    started = time.perf_counter()
    with pytest.raises(FileTooLargeError, match="larger than 10 bytes"):
        read_file_bounded(sparse, 10)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("kind", ["symlink", "directory", "FIFO", "socket"])
def test_only_regular_files_are_read(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x"
    secret = tmp_path / "secret"
    secret.write_text("outside")
    if kind == "symlink":
        path.symlink_to(secret)
    elif kind == "directory":
        path.mkdir()
    elif kind == "FIFO":
        os.mkfifo(path)  # must not block waiting for a writer
    else:
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(str(path))
    with pytest.raises(NotARegularFileError, match=f"x is a {kind}, not a regular file"):
        read_file_bounded(path, 1 << 20)


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_file_bounded(tmp_path / "nope", 10)


def test_symlink_swapped_in_after_a_check_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("outside")
    path = tmp_path / "input"
    path.write_text("inside")
    swapped = swap_at_open(monkeypatch, path, to_symlink(secret), files)
    with pytest.raises(NotARegularFileError, match="symlink"):
        read_file_bounded(path, 1 << 20)
    assert swapped == [path]


@pytest.mark.timeout(10)
def test_fifo_swapped_in_after_a_check_does_not_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "input"
    path.write_text("inside")
    swapped = swap_at_open(monkeypatch, path, to_fifo, files)
    with pytest.raises(NotARegularFileError, match="FIFO"):
        read_file_bounded(path, 1 << 20)
    assert swapped == [path]


def test_errors_are_value_errors_and_old_names_still_work() -> None:
    assert issubclass(NotARegularFileError, FileReadError)
    assert issubclass(FileTooLargeError, FileReadError)
    assert issubclass(FileReadError, ValueError)
    # Callers written against tutorial_app.archive keep working.
    assert archive.read_file_bounded is read_file_bounded
    assert archive.NotARegularFileError is NotARegularFileError
