"""apputils.process: return codes and the measured usage of a child."""
from __future__ import annotations

import asyncio
import sys

from golem_task_api.apputils.process import Usage, exec_and_monitor_cmd, exec_cmd

_WORK = (
    "import time\n"
    "block = bytearray(96 * 1024 * 1024)\n"
    "for i in range(0, len(block), 4096): block[i] = 1\n"
    "end = time.process_time() + 0.3\n"
    "while time.process_time() < end: pass\n"
    "time.sleep(0.2)\n"
    "raise SystemExit(3)\n"
)


def test_exec_cmd_returns_the_return_code() -> None:
    assert asyncio.run(exec_cmd([sys.executable, "-c", "raise SystemExit(7)"])) == 7
    assert asyncio.run(exec_cmd([sys.executable, "-c", "pass"])) == 0


def test_exec_and_monitor_cmd_measures_memory_cpu_and_time() -> None:
    code, usage = asyncio.run(exec_and_monitor_cmd([sys.executable, "-c", _WORK]))
    assert code == 3
    assert isinstance(usage, Usage)
    assert usage.mem_peak >= 96 * 1024 * 1024
    assert usage.mem_peak < 1024 * 1024 * 1024
    assert 0.3 <= usage.cpu_time < 5
    # Sleeping counts in real time, not in CPU time.
    assert usage.real_time >= usage.cpu_time + 0.15


def test_usage_defaults() -> None:
    assert Usage() == Usage(mem_peak=0.0, cpu_time=0.0, real_time=0.0)
