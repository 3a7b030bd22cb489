"""How many worker processes this process may really run: CPU cores, and memory to hold them."""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from engine.errors import InvalidWorkerCount

log = logging.getLogger(__name__)

WORKERS_ENV = "TUTORIAL_APP_WORKERS"
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
PROC_SELF_STATM = Path("/proc/self/statm")

# More processes than this is a typo, not a machine: refused before anything is spawned.
MAX_WORKERS = 1024

# What one search worker adds to its cgroup's memory use. Measured as USS (the
# worker's private pages, what the cgroup charges to it; libraries are shared):
# 10.0 MiB idle, 14.0 MiB while searching a 4 MiB input (the app's largest: the
# worker holds the input). Medians of 6 workers, sha-ni kernel, Python 3.11:
#     python - <<'EOF'
#     import psutil, engine; s = engine.Supervisor(2); s.search("boot", 0)
#     print([psutil.Process(p).memory_full_info().uss / 2**20 for p in s.pids()]); s.close()
#     EOF
# (and the same sampled during s.search("x" * (4 << 20), 256)). Rounded up for
# page tables and kernel structures, which a cgroup v2 limit counts too.
WORKER_BYTES = 16 << 20
# Left free under the limit beyond this process's own resident memory: it
# grows while serving (inputs, results, buffers), and an OOM kill costs a subtask.
MEMORY_MARGIN_BYTES = 64 << 20
# cgroup v1 writes "unlimited" as the largest page-aligned int64; anything
# this large is no limit.
_NO_MEMORY_LIMIT = 1 << 62


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _quota_cores(quota: float, period: float) -> int | None:
    if quota <= 0 or period <= 0:
        return None  # no limit
    return max(1, math.ceil(quota / period))


def _own_cgroup_dirs(root: Path, proc_cgroup: Path, controller: str, v1_mounts: tuple[str, ...]) -> list[Path]:
    """The cgroup directories that may hold this process's limit of `controller`, innermost first.

    `v1_mounts` are the directory names a cgroup v1 hierarchy holding the
    controller is commonly mounted under (besides its own controller list).
    """
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
        elif controller in controllers.split(","):
            subdirs = [controllers, *v1_mounts]
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
    dirs += [root, *(root / mount for mount in v1_mounts)]
    return list(dict.fromkeys(dirs))


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int | None:
    """The CPU quota in whole cores (rounded up) from cgroup v2 or v1 files, or None if unlimited."""
    limits: list[int] = []
    for d in _own_cgroup_dirs(root, proc_cgroup, "cpu", ("cpu", "cpu,cpuacct")):
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


def _memory_bytes(text: str | None) -> int | None:
    if text is None or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:  # garbage never takes the engine down
        return None
    return value if 0 < value < _NO_MEMORY_LIMIT else None


def cgroup_memory_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int | None:
    """The memory limit in bytes (v2 memory.max, v1 memory.limit_in_bytes), or None if unlimited.

    The smallest limit of this process's cgroup and every enclosing one counts:
    exceeding any of them gets a process of the group OOM-killed.
    """
    limits: list[int] = []
    for d in _own_cgroup_dirs(root, proc_cgroup, "memory", ("memory",)):
        for name in ("memory.max", "memory.limit_in_bytes"):
            limit = _memory_bytes(_read(d / name))
            if limit is not None:
                limits.append(limit)
    return min(limits) if limits else None


def own_resident_bytes(statm: Path = PROC_SELF_STATM) -> int:
    """This process's resident memory in bytes (0 where /proc is not available)."""
    fields = (_read(statm) or "").split()
    try:
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (IndexError, ValueError, OSError):
        return 0


def memory_workers(limit: int, own_bytes: int) -> int:
    """Workers that fit under a memory `limit` beside this process's `own_bytes`, with headroom; at least 1."""
    spare = limit - own_bytes - MEMORY_MARGIN_BYTES
    return max(1, spare // WORKER_BYTES)


def affinity_cores() -> int:
    """CPUs this process may be scheduled on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_worker_count(workers: object, what: str = "workers") -> int:
    """`workers` if it is an int in 1..MAX_WORKERS, else InvalidWorkerCount naming `what`."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise InvalidWorkerCount(f"{what} must be a positive integer up to {MAX_WORKERS}, got {workers!r}")
    return workers


def workers_override() -> int | None:
    """The worker count $TUTORIAL_APP_WORKERS sets, None if unset or empty; InvalidWorkerCount if bad."""
    raw = os.environ.get(WORKERS_ENV, "")
    text = raw.strip()
    if not text:
        return None
    try:
        return check_worker_count(int(text, 10), WORKERS_ENV)
    except (ValueError, InvalidWorkerCount):
        # Named as set, so "0" and "abc" read alike in the one-line message.
        raise InvalidWorkerCount(
            f"{WORKERS_ENV} must be a positive integer up to {MAX_WORKERS}, got {raw!r}"
        ) from None


def cpu_cores(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """min(CPU affinity, cgroup CPU quota), at least 1."""
    cores = affinity_cores()
    limit = cgroup_cpu_limit(cgroup_root, proc_cgroup)
    if limit is not None:
        cores = min(cores, limit)
    return max(1, cores)


def usable_cores(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """min(CPU affinity, cgroup CPU quota), at least 1; $TUTORIAL_APP_WORKERS overrides.

    Counts CPUs only: to size a pool, use usable_workers(), which also fits
    the pool into the memory limit.
    """
    override = workers_override()
    return override if override is not None else cpu_cores(cgroup_root, proc_cgroup)


def usable_workers(
    cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP, statm: Path = PROC_SELF_STATM
) -> int:
    """The default pool size: usable CPU cores, fewer if the cgroup memory limit cannot hold that many workers.

    A worker is counted at WORKER_BYTES; this process's resident memory and
    MEMORY_MARGIN_BYTES stay free under the limit. $TUTORIAL_APP_WORKERS
    overrides both (with a warning if memory would not allow it).
    """
    override = workers_override()
    cores = override if override is not None else cpu_cores(cgroup_root, proc_cgroup)
    limit = cgroup_memory_limit(cgroup_root, proc_cgroup)
    if limit is None:
        return cores
    own = own_resident_bytes(statm)
    fits = memory_workers(limit, own)
    if fits >= cores:
        return cores
    if override is not None:
        log.warning(
            "engine: %s=%d workers, but the memory limit of %d MiB fits only %d; the pool may be OOM-killed",
            WORKERS_ENV, override, limit >> 20, fits,
        )
        return override
    log.warning(
        "engine: %d workers, not %d: memory decides (limit %d MiB, %d MiB per worker, %d MiB for this process"
        " and headroom)",
        fits, cores, limit >> 20, WORKER_BYTES >> 20, (own + MEMORY_MARGIN_BYTES) >> 20,
    )
    return fits
