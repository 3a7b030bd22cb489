"""The multiprocess nonce-search engine: the proof of work, its kernels, the pool and the benchmark.

No gRPC and no asyncio here; usable on its own::

    from engine import search, search_in_process
    solution = search("some input", difficulty=16)  # all usable cores, memory permitting
    solution = search_in_process("some input", 16, threads=2)  # no pool: threads of this process

Names are imported on first use, so a worker process that needs only
``engine.worker`` does not pay for the rest at start-up.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.scoring import BENCHMARK_MAX_SCORE, benchmark
    from engine.cores import usable_cores, usable_workers
    from engine.errors import (
        EngineError,
        InvalidWorkerCount,
        PoolStartFailed,
        SearchCancelled,
        WorkerCrashed,
        WorkerStalled,
    )
    from engine.inprocess import search_in_process
    from engine.kernels import available_kernels, default_kernel
    from engine.pow import reference_search, sha256_hex, target_for, verify
    from engine.records import Progress, Solution
    from engine.supervisor import Supervisor, search

_HOMES = {
    "BENCHMARK_MAX_SCORE": "engine.scoring",
    "benchmark": "engine.scoring",
    "usable_cores": "engine.cores",
    "usable_workers": "engine.cores",
    "EngineError": "engine.errors",
    "InvalidWorkerCount": "engine.errors",
    "PoolStartFailed": "engine.errors",
    "SearchCancelled": "engine.errors",
    "WorkerCrashed": "engine.errors",
    "WorkerStalled": "engine.errors",
    "search_in_process": "engine.inprocess",
    "available_kernels": "engine.kernels",
    "default_kernel": "engine.kernels",
    "reference_search": "engine.pow",
    "sha256_hex": "engine.pow",
    "target_for": "engine.pow",
    "verify": "engine.pow",
    "Progress": "engine.records",
    "Solution": "engine.records",
    "Supervisor": "engine.supervisor",
    "search": "engine.supervisor",
}

__all__ = [
    "BENCHMARK_MAX_SCORE",
    "EngineError",
    "InvalidWorkerCount",
    "PoolStartFailed",
    "Progress",
    "SearchCancelled",
    "Solution",
    "Supervisor",
    "WorkerCrashed",
    "WorkerStalled",
    "available_kernels",
    "benchmark",
    "default_kernel",
    "reference_search",
    "search",
    "search_in_process",
    "sha256_hex",
    "target_for",
    "usable_cores",
    "usable_workers",
    "verify",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
