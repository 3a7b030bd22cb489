"""Where the local node keeps its scratch dir (in memory when there is room, else the temp dir),
and how a run removes what a run killed outright left in memory."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import tutorial_app.servers as servers
from tutorial_app.servers import (
    OWNER_FILE, SCRATCH_PREFIX, process_stamp, scratch_dir, scratch_need_bytes, scratch_root,
    sweep_abandoned_scratch,
)


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


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def _scratch(root: Path, name: str, owner: str | None) -> Path:
    path = root / f"{SCRATCH_PREFIX}{name}"
    (path / "providers").mkdir(parents=True)
    if owner is not None:
        (path / OWNER_FILE).write_text(owner + "\n", encoding="ascii")
    return path


def test_a_killed_runs_scratch_dir_is_removed_and_nothing_else(memory: Path, tmp_path: Path) -> None:
    dead = _scratch(memory, "dead", f"{_dead_pid()} 1.000")
    reused = _scratch(memory, "reused", f"{os.getpid()} 1.000")  # our pid, another start time
    live = _scratch(memory, "live", process_stamp(os.getpid()))
    kept = _scratch(memory, "kept", None)  # unclaimed: kept by the user
    elsewhere = tmp_path / "elsewhere"
    _scratch(elsewhere, "x", f"{_dead_pid()} 1.000")
    (memory / f"{SCRATCH_PREFIX}link").symlink_to(elsewhere / f"{SCRATCH_PREFIX}x")

    assert sorted(sweep_abandoned_scratch(memory)) == sorted([dead, reused])
    assert live.is_dir() and kept.is_dir() and (elsewhere / f"{SCRATCH_PREFIX}x").is_dir()


def test_a_new_scratch_dir_in_memory_names_its_owner_and_sweeps_first(memory: Path) -> None:
    dead = _scratch(memory, "dead", f"{_dead_pid()} 1.000")
    claimed = scratch_dir(None, 1 << 20)
    assert not dead.exists()
    assert (claimed / OWNER_FILE).read_text(encoding="ascii").strip() == process_stamp(os.getpid())
    assert not (scratch_dir(None, 1 << 20, claim=False) / OWNER_FILE).exists()


@pytest.mark.timeout(90)
@pytest.mark.skipif(scratch_root(1 << 20) is None, reason="no room in /dev/shm here")
def test_the_next_run_removes_what_a_run_killed_outright_left_in_memory(tmp_path: Path) -> None:
    import psutil
    input_file = tmp_path / "input.txt"
    input_file.write_text("killed run\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "TMPDIR"}
    cli = [sys.executable, "-m", "tutorial_app.cli", "run", str(input_file)]
    killed = subprocess.Popen([*cli, "-d", "256", "-n", "1", "--out", str(tmp_path / "a"), "--json"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    left = None
    try:
        deadline = time.monotonic() + 30
        while left is None:
            assert time.monotonic() < deadline, "the run never made its scratch dir"
            for path in servers.MEMORY_SCRATCH.glob(f"{SCRATCH_PREFIX}*"):
                with contextlib.suppress(OSError):
                    if (path / OWNER_FILE).read_text().split()[0] == str(killed.pid):
                        left = path
            time.sleep(0.05)
        descendants = psutil.Process(killed.pid).children(recursive=True)
        killed.kill()
        killed.wait()
        _, alive = psutil.wait_procs(descendants, timeout=10)
        for process in alive:
            process.kill()
        assert left.is_dir()  # nobody was left to remove it
        done = subprocess.run([*cli, "-d", "0", "-n", "1", "--out", str(tmp_path / "b"), "--json"],
                              capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr
        assert not left.exists()
    finally:
        if killed.poll() is None:
            killed.kill()
        if left is not None:
            shutil.rmtree(left, ignore_errors=True)
