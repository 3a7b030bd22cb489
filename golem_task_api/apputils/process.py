"""Running a command from a coroutine, optionally measuring what it used."""
from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

POLL_INTERVAL_SECONDS = 0.02
"""How often the child's memory is sampled."""


@dataclass
class Usage:
    """What a command used: peak resident memory (bytes), CPU time and wall time (seconds)."""

    mem_peak: float = 0.0
    cpu_time: float = 0.0
    real_time: float = 0.0


async def exec_cmd(cmd: Sequence[str]) -> int:
    """Run ``cmd`` (program and arguments, no shell) to its end; its return code.

    If the awaiting task is cancelled the command is killed first.
    """
    proc = await asyncio.create_subprocess_exec(*cmd)
    try:
        return await proc.wait()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
        raise


async def exec_and_monitor_cmd(cmd: Sequence[str]) -> tuple[int, Usage]:
    """Run ``cmd`` like `exec_cmd`; also its peak memory, CPU time and real time.

    Memory is sampled with psutil (the child and its descendants, summed)
    while it runs, and raised to the kernel's own peak for the child when it
    ends; CPU time (user + system, the child and the descendants it waited
    for) comes from the kernel when the child is reaped, so it is exact.
    """
    started = time.monotonic()
    proc = subprocess.Popen(list(cmd))
    loop = asyncio.get_running_loop()
    reaped = loop.run_in_executor(None, _wait4, proc)
    peak = 0
    try:
        try:
            watched = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            watched = None
        while not reaped.done():
            if watched is not None:
                peak = max(peak, _tree_rss(watched))
            await asyncio.wait({reaped}, timeout=POLL_INTERVAL_SECONDS)
        code, rusage = await reaped
    except BaseException:
        if proc.returncode is None:
            proc.kill()
        await asyncio.shield(reaped)
        raise
    real = time.monotonic() - started
    # ru_maxrss is in KiB on Linux.
    peak = max(peak, rusage.ru_maxrss * 1024)
    return code, Usage(mem_peak=float(peak), cpu_time=rusage.ru_utime + rusage.ru_stime,
                       real_time=real)


def _wait4(proc: subprocess.Popen[bytes]) -> tuple[int, os.struct_rusage]:  # type: ignore[name-defined]
    """Reap ``proc`` and return its exit code and resource usage."""
    _, status, rusage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    # Tell Popen the child is reaped, so it never waits for the pid again.
    proc.returncode = code
    return code, rusage


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in family:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


__all__ = ["Usage", "exec_and_monitor_cmd", "exec_cmd"]
