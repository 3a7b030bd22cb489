"""How many CPU cores this process may really use."""
from __future__ import annotations

import math
import os
from pathlib import Path

WORKERS_ENV = "TUTORIAL_APP_WORKERS"
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _quota_cores(quota: float, period: float) -> int | None:
    if quota <= 0 or period <= 0:
        return None  # no limit
    return max(1, math.ceil(quota / period))


def _own_cgroup_dirs(root: Path, proc_cgroup: Path) -> list[Path]:
    """The cgroup directories that may hold this process's CPU limit, innermost first."""
    dirs: list[Path] = []
    text = _read(proc_cgroup) or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        rel = rel.lstrip("/")
        if controllers == "":
            subdirs = [""]  # the v2 unified hierarchy
        elif "cpu" in controllers.split(","):
            subdirs = [controllers, "cpu", "cpu,cpuacct"]  # v1: mounted under its controller names
        else:
            continue
        for sub in subdirs:
            base = root / sub if sub else root
            path = base / rel if rel else base
            # Limits of enclosing groups apply too: walk up to the mount root.
            while True:
                dirs.append(path)
                if path == base:
                    break
                path = path.parent
    # Inside a container the own cgroup is usually mounted as the root itself.
    dirs += [root, root / "cpu", root / "cpu,cpuacct"]
    return dirs


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int | None:
    """The CPU quota in whole cores (rounded up) from cgroup v2 or v1 files, or None if unlimited."""
    limits: list[int] = []
    for d in dict.fromkeys(_own_cgroup_dirs(root, proc_cgroup)):
        v2 = _read(d / "cpu.max")
        if v2 is not None:
            fields = v2.split()
            if len(fields) == 2 and fields[0] != "max":
                try:
                    cores = _quota_cores(float(fields[0]), float(fields[1]))
                except (ValueError, OverflowError):  # garbage never takes the engine down
                    cores = None
                if cores is not None:
                    limits.append(cores)
        quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            try:
                cores = _quota_cores(float(quota), float(period))
            except (ValueError, OverflowError):
                cores = None
            if cores is not None:
                limits.append(cores)
    return min(limits) if limits else None


def affinity_cores() -> int:
    """CPUs this process may be scheduled on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def usable_cores(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """min(CPU affinity, cgroup CPU quota), at least 1; $TUTORIAL_APP_WORKERS overrides."""
    override = os.environ.get(WORKERS_ENV, "").strip()
    if override:
        try:
            workers = int(override)
        except ValueError:
            workers = 0
        if workers < 1:
            raise ValueError(f"{WORKERS_ENV} must be a positive integer, got {override!r}")
        return workers
    cores = affinity_cores()
    limit = cgroup_cpu_limit(cgroup_root, proc_cgroup)
    if limit is not None:
        cores = min(cores, limit)
    return max(1, cores)
