"""usable_cores: CPU affinity, cgroup v1/v2 quotas, and the environment override."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import usable_cores
from engine.cores import WORKERS_ENV, cgroup_cpu_limit


@pytest.fixture(autouse=True)
def no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKERS_ENV, raising=False)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def proc_cgroup(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proc-self-cgroup"
    path.write_text(text)
    return path


def test_v2_cpu_max_limits_cores(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    write(root / "cpu.max", "150000 100000")  # 1.5 CPUs -> 2 workers
    assert cgroup_cpu_limit(root, proc_cgroup(tmp_path, "0::/\n")) == 2
    write(root / "cpu.max", "50000 100000")
    assert usable_cores(root, proc_cgroup(tmp_path, "0::/\n")) == 1


def test_v2_nested_group_and_parent_limits(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    write(root / "app" / "job" / "cpu.max", "max 100000")
    write(root / "app" / "cpu.max", "100000 100000")
    assert cgroup_cpu_limit(root, proc_cgroup(tmp_path, "0::/app/job\n")) == 1


def test_v2_unlimited(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    write(root / "cpu.max", "max 100000")
    assert cgroup_cpu_limit(root, proc_cgroup(tmp_path, "0::/\n")) is None
    assert usable_cores(root, proc_cgroup(tmp_path, "0::/\n")) == len(os.sched_getaffinity(0))


def test_v1_cfs_quota(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "100000")
    write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000")
    text = "4:memory:/\n3:cpu,cpuacct:/\n"
    assert cgroup_cpu_limit(root, proc_cgroup(tmp_path, text)) == 1
    assert usable_cores(root, proc_cgroup(tmp_path, text)) == 1


def test_v1_unlimited_quota(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    write(root / "cpu" / "cpu.cfs_quota_us", "-1")
    write(root / "cpu" / "cpu.cfs_period_us", "100000")
    assert cgroup_cpu_limit(root, proc_cgroup(tmp_path, "1:cpu:/\n")) is None


def test_no_cgroup_files(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path / "missing", tmp_path / "missing-proc") is None


def test_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WORKERS_ENV, "7")
    assert usable_cores() == 7
    monkeypatch.setenv(WORKERS_ENV, "zero")
    with pytest.raises(ValueError, match=WORKERS_ENV):
        usable_cores()
    monkeypatch.setenv(WORKERS_ENV, "0")
    with pytest.raises(ValueError, match="positive integer"):
        usable_cores()


def test_affinity_is_respected(tmp_path: Path) -> None:
    # In a child so this process's affinity stays as it was.
    code = (
        "import os, pathlib; from engine import usable_cores\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        f"print(usable_cores(pathlib.Path({str(tmp_path)!r})))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != WORKERS_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "1"


def test_affinity_and_quota_take_the_smaller(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    write(root / "cpu.max", "800000 100000")  # 8 CPUs of quota, affinity is smaller
    assert usable_cores(root, proc_cgroup(tmp_path, "0::/\n")) == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("content", [b"inf 100000", b"1e400 100000", b"nan 100000", b"\xff\xfe 1"])
def test_garbage_cgroup_files_mean_no_limit(tmp_path: Path, content: bytes) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cpu.max").write_bytes(content)
    (root / "cpu.cfs_quota_us").write_bytes(content.split()[0])
    (root / "cpu.cfs_period_us").write_bytes(b"100000")
    assert cgroup_cpu_limit(root, proc_cgroup(tmp_path, "0::/\n")) is None
