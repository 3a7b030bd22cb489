"""tutorial_app.workdir.check_work_dir: one line naming the dir, the uid and the problem.

No Docker needed; test_node_mode checks the same line from a container.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tutorial_app.workdir import MissingWorkDirError, UnwritableWorkDirError, WorkDirError, check_work_dir


def test_a_usable_dir_passes(tmp_path: Path) -> None:
    """A directory this process may list, enter and write raises nothing."""
    check_work_dir(tmp_path)


def test_a_missing_dir_is_named_with_the_uid(tmp_path: Path) -> None:
    """The exact one line: the path, "does not exist", and who was looking."""
    missing = tmp_path / "gone"
    with pytest.raises(MissingWorkDirError) as caught:
        check_work_dir(missing)
    message = str(caught.value)
    assert message == f"work dir {missing} does not exist (running as uid {os.getuid()} gid {os.getgid()})"
    assert caught.value.path == missing


def test_a_file_is_not_a_work_dir(tmp_path: Path) -> None:
    """A regular file where the dir should be is reported as such."""
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(MissingWorkDirError, match="is not a directory"):
        check_work_dir(file)


@pytest.mark.skipif(
    hasattr(os, "getuid") and os.getuid() == 0,
    reason="root may write any directory; test_node_mode checks this as a foreign uid in a container")
def test_an_unwritable_dir_names_owner_mode_and_uid(tmp_path: Path) -> None:
    """The one line says whose the dir is, its mode, and who could not write it."""
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    work_dir.chmod(0o555)
    try:
        with pytest.raises(UnwritableWorkDirError) as caught:
            check_work_dir(work_dir)
    finally:
        work_dir.chmod(0o755)
    assert str(caught.value) == (
        f"work dir {work_dir} is not writable: owned by uid {os.getuid()} gid {work_dir.stat().st_gid}, "
        f"mode dr-xr-xr-x (running as uid {os.getuid()} gid {os.getgid()})")


def test_every_problem_is_a_work_dir_error() -> None:
    """The entrypoint catches one class for all of them."""
    assert issubclass(MissingWorkDirError, WorkDirError)
    assert issubclass(UnwritableWorkDirError, WorkDirError)
