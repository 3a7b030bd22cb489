"""usable_cores / usable_workers: CPU affinity, cgroup v1/v2 CPU and memory limits, the environment override."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import (
    EngineError,
    InvalidWorkerCount,
    Progress,
    SearchCancelled,
    Supervisor,
    usable_cores,
    usable_workers,
)
from engine.cores import (
    MEMORY_MARGIN_BYTES,
    WORKER_BYTES,
    WORKERS_ENV,
    cgroup_cpu_limit,
    cgroup_memory_limit,
    memory_workers,
)


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
    assert usable_workers() == 7
    monkeypatch.setenv(WORKERS_ENV, " ")
    assert usable_workers() == usable_cores() >= 1


@pytest.mark.parametrize("bad", ["abc", "zero", "0", "-1", "1.5", "0x10", "2000"])
def test_bad_env_override_is_one_named_error(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    # The CLI prints str(error) as its one line: it must name the setting and the value.
    monkeypatch.setenv(WORKERS_ENV, bad)
    for size in (usable_cores, usable_workers, Supervisor):
        with pytest.raises(InvalidWorkerCount) as caught:
            size()
        message = str(caught.value)
        assert "\n" not in message and WORKERS_ENV in message and repr(bad) in message
        assert "positive integer up to 1024" in message
    assert issubclass(InvalidWorkerCount, EngineError) and issubclass(InvalidWorkerCount, ValueError)


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


MiB = 1 << 20


def statm(tmp_path: Path, resident_bytes: int) -> Path:
    """A fake /proc/self/statm: this process resident at `resident_bytes`."""
    path = tmp_path / "statm"
    path.write_text(f"100000 {resident_bytes // os.sysconf('SC_PAGE_SIZE')} 0 0 0 0 0\n")
    return path


def test_v2_memory_max(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    write(root / "memory.max", str(1024 * MiB))
    assert cgroup_memory_limit(root, proc_cgroup(tmp_path, "0::/\n")) == 1024 * MiB
    write(root / "memory.max", "max")
    assert cgroup_memory_limit(root, proc_cgroup(tmp_path, "0::/\n")) is None


def test_v2_nested_memory_limits_take_the_smallest(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    write(root / "node" / "app" / "memory.max", "max")
    write(root / "node" / "memory.max", str(300 * MiB))
    write(root / "memory.max", str(2048 * MiB))
    assert cgroup_memory_limit(root, proc_cgroup(tmp_path, "0::/node/app\n")) == 300 * MiB


def test_v1_memory_limit_in_bytes(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    text = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n"
    write(root / "memory" / "docker" / "abc" / "memory.limit_in_bytes", str(512 * MiB))
    write(root / "memory" / "memory.limit_in_bytes", "9223372036854771712")  # v1's "unlimited"
    assert cgroup_memory_limit(root, proc_cgroup(tmp_path, text)) == 512 * MiB
    # A container sees its own group as the mount root.
    root2 = tmp_path / "cg2"
    write(root2 / "memory" / "memory.limit_in_bytes", str(256 * MiB))
    assert cgroup_memory_limit(root2, proc_cgroup(tmp_path, "4:memory:/docker/abc\n")) == 256 * MiB


@pytest.mark.parametrize("content", ["9223372036854771712", "max", "-1", "0", "lots", "1e9", ""])
def test_unlimited_or_garbage_memory_means_no_limit(tmp_path: Path, content: str) -> None:
    root = tmp_path / "cg"
    write(root / "memory.max", content)
    write(root / "memory" / "memory.limit_in_bytes", content)
    assert cgroup_memory_limit(root, proc_cgroup(tmp_path, "4:memory:/\n0::/\n")) is None


def test_memory_decides_for_many_cores_under_the_node_default_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A provider sharing 128 cores under a Golem node's default 1024 MB limit.
    import engine.cores

    monkeypatch.setattr(engine.cores, "affinity_cores", lambda: 128)
    root = tmp_path / "cg"
    write(root / "memory.max", str(1024 * 1000 * 1000))
    own = 40 * MiB
    with caplog.at_level("WARNING", logger="engine.cores"):
        workers = usable_workers(root, proc_cgroup(tmp_path, "0::/\n"), statm(tmp_path, own))
    assert usable_cores(root, proc_cgroup(tmp_path, "0::/\n")) == 128
    assert 1 < workers < 128
    assert own + workers * WORKER_BYTES + MEMORY_MARGIN_BYTES <= 1024 * 1000 * 1000
    assert own + (workers + 1) * WORKER_BYTES + MEMORY_MARGIN_BYTES > 1024 * 1000 * 1000
    assert "memory decides" in caplog.text and f"{workers} workers, not 128" in caplog.text


def test_cores_decide_under_a_roomy_limit_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "cg"
    write(root / "cpu.max", "100000 100000")
    write(root / "memory.max", str(4096 * MiB))
    with caplog.at_level("WARNING", logger="engine.cores"):
        assert usable_workers(root, proc_cgroup(tmp_path, "0::/\n"), statm(tmp_path, 40 * MiB)) == 1
    assert caplog.text == ""


def test_a_limit_too_small_for_one_worker_still_gives_one(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    write(root / "memory" / "memory.limit_in_bytes", str(32 * MiB))
    assert memory_workers(32 * MiB, 40 * MiB) == 1
    assert usable_workers(root, proc_cgroup(tmp_path, "4:memory:/\n"), statm(tmp_path, 40 * MiB)) == 1


def test_override_wins_over_memory_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "cg"
    write(root / "memory.max", str(100 * MiB))
    monkeypatch.setenv(WORKERS_ENV, "6")
    with caplog.at_level("WARNING", logger="engine.cores"):
        assert usable_workers(root, proc_cgroup(tmp_path, "0::/\n"), statm(tmp_path, 0)) == 6
    assert WORKERS_ENV in caplog.text and "OOM" in caplog.text


def test_default_pool_size_follows_the_memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.cores

    monkeypatch.setattr(engine.cores, "affinity_cores", lambda: 8)
    monkeypatch.setattr(engine.cores, "cgroup_cpu_limit", lambda *_: None)
    monkeypatch.setattr(engine.cores, "cgroup_memory_limit", lambda *_: 200 * MiB)
    monkeypatch.setattr(engine.cores, "own_resident_bytes", lambda *_: 40 * MiB)
    expected = (200 - 40 - 64) * MiB // WORKER_BYTES
    assert Supervisor().workers == expected < 8


def test_a_worker_costs_no_more_than_counted() -> None:
    import psutil

    from engine.pow import MAX_DIFFICULTY

    with Supervisor(1) as supervisor:
        supervisor.search("boot", 0)
        worker = psutil.Process(supervisor.pids()[0])
        assert worker.memory_full_info().uss <= WORKER_BYTES
        # With the app's largest input (4 MiB) in hand, mid-search.
        seen: list[int] = []

        def sample(progress: Progress) -> None:
            if progress.hashes > 0:  # the worker holds the input and is scanning
                seen.append(worker.memory_full_info().uss)

        with pytest.raises(SearchCancelled):
            supervisor.search(
                "x" * (4 * MiB), MAX_DIFFICULTY, progress=sample, progress_interval=0.02,
                should_stop=lambda: len(seen) >= 10,
            )
        assert max(seen) <= WORKER_BYTES
