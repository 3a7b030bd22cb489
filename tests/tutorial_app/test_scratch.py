"""Where the local node keeps its scratch dir: in memory when there is room, else the temp dir."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

import tutorial_app.servers as servers
from tutorial_app.servers import scratch_dir, scratch_need_bytes, scratch_root


@pytest.fixture
def memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /dev/shm with 1 GiB free, and no TMPDIR chosen."""
    where = tmp_path / "shm"
    where.mkdir()
    monkeypatch.setattr(servers, "MEMORY_SCRATCH", where)
    monkeypatch.delenv("TMPDIR", raising=False)
    real = os.statvfs
    monkeypatch.setattr(servers.os, "statvfs", lambda path: (
        SimpleNamespace(f_bavail=(1 << 30) // 4096, f_frsize=4096) if Path(path) == where else real(path)))
    return where


def test_a_run_that_fits_twice_gets_its_scratch_in_memory(memory: Path) -> None:
    assert scratch_root(100 << 20) == memory
    made = scratch_dir(None, 100 << 20)
    assert made.parent == memory and made.is_dir()


def test_a_run_that_would_take_over_half_of_the_room_stays_on_disk(memory: Path) -> None:
    assert scratch_root((512 << 20) + 1) is None
    assert scratch_dir(None, 600 << 20).parent != memory


def test_tmpdir_is_the_users_choice(memory: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert scratch_root(1) is None


def test_no_memory_dir_or_one_we_may_not_write_means_disk(
        memory: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert scratch_root(1, memory=tmp_path / "absent") is None
    monkeypatch.setattr(servers.os, "access", lambda path, mode: False)
    assert scratch_root(1) is None


def test_the_estimate_grows_with_the_input_the_parts_and_kept_work_dirs() -> None:
    small = scratch_need_bytes(1_000, 4)
    assert scratch_need_bytes(1_000_000, 4) > small
    assert scratch_need_bytes(1_000, 400) > small
    assert scratch_need_bytes(4 << 20, 100, keep_work_dirs=True) > scratch_need_bytes(4 << 20, 100) > 400 << 20
