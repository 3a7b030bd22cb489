"""Hash rates of the seed loop, every scan kernel, the pool and hashcat, plus pool start/stop latency.

    python -m bench.hashrate [--json] [--seconds S] [--reps R] [--max-workers N] [--hashcat-runs R]

Everything runs in one process on the same input, so the ratios compare like
with like. Where `hashcat` is installed, its own benchmark of raw SHA-256
(``hashcat -b -m 1400 -O``, on the CPU through OpenCL) runs in the same
invocation and the pool's rate is quoted against it. The machine may be
shared: read the figures together with the load average it prints.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

import psutil  # type: ignore[import-untyped]

from engine import SearchCancelled, Supervisor, available_kernels, default_kernel, usable_workers
from engine.layout import one_block_salt_length
from engine.pow import MAX_DIFFICULTY, sha256_hex

_TEXT = "hashrate benchmark input"
# Shaped as the requestor shapes a part's input: text + salt, every nonce in one final block.
INPUT = _TEXT + "0" * one_block_salt_length(len(_TEXT.encode()), 0)
# Every rate is the median of this many runs: a shared machine's noise moves
# single runs, the median much less.
SAMPLES = 5
TARGETS = {
    "fast_python_over_seed": 1.6,
    "pool_efficiency": 0.9,
    "stop_median_ms": 100.0,
    "stop_max_ms": 250.0,
    "start_2_workers_ms": 150.0,
    "pool_over_hashcat": 1.2,
    "avx2_over_portable": 2.0,
}
HASHCAT_RUNS = 3
# One line per device of `hashcat -b --machine-readable`:
# device:hash-mode:core-clock:memory-clock:exec-ms:hashes-per-second
_HASHCAT_LINE = re.compile(r"^(\d+):1400:[^:\n]*:[^:\n]*:[\d.]+:(\d+)\s*$", re.MULTILINE)


def parse_hashcat_benchmark(output: str) -> float | None:
    """Hashes per second of every device together, from `hashcat -b -m 1400 --machine-readable` output."""
    rates = [int(match.group(2)) for match in _HASHCAT_LINE.finditer(output)]
    return float(sum(rates)) if rates else None


class HashcatUnavailable(Exception):
    """hashcat is missing or did not print a -m 1400 rate; the message says which."""


@dataclass(frozen=True)
class HashcatRun:
    """One hashcat benchmark run: its reported rate and the CPUs it got while running."""

    rate: float  # hashes per second, as hashcat reports it
    cpu_share: float  # CPU seconds per wall second of the whole process, start-up included


def hashcat_once() -> HashcatRun:
    """One run of hashcat's SHA-256 benchmark (-m 1400 -O) over all devices."""
    exe = shutil.which("hashcat")
    if exe is None:
        raise HashcatUnavailable("hashcat is not installed (apt-get install hashcat pocl-opencl-icd)")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    try:
        done = subprocess.run(
            [exe, "-b", "-m", "1400", "-O", "--machine-readable", "--quiet"],
            capture_output=True, text=True, timeout=300, check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise HashcatUnavailable(f"hashcat failed to run: {error}") from error
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rate = parse_hashcat_benchmark(done.stdout)
    if rate is None:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise HashcatUnavailable(f"hashcat printed no -m 1400 rate (exit {done.returncode}): {last[0]}")
    return HashcatRun(rate, cpu / wall)


def hashcat_against_pool(supervisor: Supervisor, seconds: float, runs: int) -> dict[str, Any]:
    """hashcat and the pool measured in turns, `runs` pairs: their medians and the median pair ratio.

    Taking turns puts both under the same (shared) machine load; the ratio
    within a pair is the figure that load disturbs least. Per CPU: each
    rate over the CPUs it got (hashcat's share counts its start-up, which
    understates its share and so flatters hashcat's per-CPU rate).
    """
    hashcat: list[HashcatRun] = []
    pool: list[PoolRate] = []
    for _ in range(runs):
        hashcat.append(hashcat_once())
        pool.append(pool_rate(supervisor, seconds))
    return {
        "hashcat_rate": statistics.median(h.rate for h in hashcat),
        "hashcat_cpu_share": statistics.median(h.cpu_share for h in hashcat),
        "pool_rate": statistics.median(p.rate for p in pool),
        "pool_cpu_share": statistics.median(p.cpu_share for p in pool),
        "pool_over_hashcat": statistics.median(p.rate / h.rate for p, h in zip(pool, hashcat)),
        "pool_over_hashcat_per_cpu": statistics.median(
            p.cpu_rate / (h.rate / h.cpu_share) for p, h in zip(pool, hashcat)
        ),
        "pairs": [
            {"hashcat_rate": h.rate, "hashcat_cpu_share": h.cpu_share, "pool_rate": p.rate, "pool_cpu_share": p.cpu_share}
            for p, h in zip(pool, hashcat)
        ],
    }


def seed_rate(seconds: float) -> float:
    """The seed guide's loop (hex digest and big-int compare per nonce), median of SAMPLES."""
    return statistics.median(_seed_rate_once(seconds) for _ in range(SAMPLES))


def _seed_rate_once(seconds: float) -> float:
    target = 2 ** (256 - MAX_DIFFICULTY)
    nonce = 0
    began = time.perf_counter()
    deadline = began + seconds
    while True:
        for _ in range(2000):
            if int(sha256_hex(INPUT, nonce), 16) < target:
                raise AssertionError("difficulty 256 solved")
            nonce += 1
        now = time.perf_counter()
        if now >= deadline:
            return nonce / (now - began)


@dataclass(frozen=True)
class PoolRate:
    """One pool measurement: hashes per wall second and per worker CPU second."""

    rate: float
    cpu_rate: float  # hashes per CPU second the workers actually got
    cpu_share: float  # worker CPU seconds per wall second (N when nothing else runs)


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def pool_rate(supervisor: Supervisor, seconds: float) -> PoolRate:
    """A pool searching for `seconds` (never succeeds), the median of SAMPLES by wall rate."""
    supervisor.search(INPUT, 0)  # the workers are up before the clock starts
    samples = []
    for _ in range(SAMPLES):
        cpu_before = _cpu_seconds(supervisor.pids())
        began = time.perf_counter()
        try:
            supervisor.search(INPUT, MAX_DIFFICULTY, should_stop=lambda: time.perf_counter() - began >= seconds)
        except SearchCancelled as stopped:
            cpu = _cpu_seconds(supervisor.pids()) - cpu_before
            samples.append(PoolRate(stopped.hashes / stopped.seconds, stopped.hashes / cpu, cpu / stopped.seconds))
    return sorted(samples, key=lambda sample: sample.rate)[len(samples) // 2]


def block_rate(seconds: float) -> float:
    """SHA-256 compression rate of hashlib on a large buffer: bytes/s / 64."""
    buffer = os.urandom(8 << 20)
    done = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        hashlib.sha256(buffer).digest()
        done += len(buffer)
    return done / (time.perf_counter() - began) / 64


def start_latency(workers: int, reps: int) -> list[float]:
    """start() -> first answer from every worker (a difficulty-0 search), in seconds."""
    samples = []
    for _ in range(reps):
        with Supervisor(workers) as supervisor:
            began = time.perf_counter()
            supervisor.start()
            supervisor.search(INPUT, 0)
            samples.append(time.perf_counter() - began)
    return samples


def _solvable_difficulty(rate: float, seconds: float) -> int:
    """A difficulty the pool solves in about `seconds` on average."""
    return max(1, int((rate * seconds)).bit_length() - 1)


def stop_latency(workers: int, reps: int, rate: float) -> dict[str, list[float]]:
    """found-or-cancel -> all workers exited, in seconds, on one-shot pools."""
    found, cancelled = [], []
    difficulty = _solvable_difficulty(rate, 0.2)
    for rep in range(reps):
        supervisor = Supervisor(workers)
        supervisor.search(INPUT, 0)
        try:
            supervisor.search(f"{INPUT} {rep}", difficulty)
            tail = supervisor.last_stop_seconds or 0.0
        finally:
            began = time.perf_counter()
            supervisor.close()
            found.append(tail + time.perf_counter() - began)

        supervisor = Supervisor(workers)
        supervisor.search(INPUT, 0)
        stamp: list[float] = []

        def cancel(target: Supervisor = supervisor) -> None:
            stamp.append(time.perf_counter())
            target.cancel()

        timer = threading.Timer(0.2, cancel)
        timer.start()
        try:
            supervisor.search(INPUT, MAX_DIFFICULTY)
        except SearchCancelled:
            pass
        finally:
            supervisor.close()
            timer.join()
            cancelled.append(time.perf_counter() - stamp[0])
    return {"found": found, "cancel": cancelled}


def _ms(samples: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(samples) * 1e3, "max_ms": max(samples) * 1e3}


def run(seconds: float, reps: int, max_workers: int, hashcat_runs: int = HASHCAT_RUNS) -> dict[str, Any]:
    """Measure everything; a JSON-ready dict."""
    result: dict[str, Any] = {
        "load_average_before": os.getloadavg(),
        "usable_workers": usable_workers(),
        "default_kernel": default_kernel(),
        "seconds_per_rate": seconds,
    }
    seed = seed_rate(seconds)
    result["seed_rate"] = seed
    kernels: dict[str, PoolRate] = {}
    for name in available_kernels():
        with Supervisor(1, kernel=name) as supervisor:
            kernels[name] = pool_rate(supervisor, seconds)
    result["kernel_rate_one_worker"] = {name: k.rate for name, k in kernels.items()}
    # Per CPU second the worker got: steadier than wall rates when the machine is shared.
    result["kernel_cpu_rate_one_worker"] = {name: k.cpu_rate for name, k in kernels.items()}
    result["kernel_over_seed"] = {name: k.rate / seed for name, k in kernels.items()}
    pool: dict[int, PoolRate] = {}
    for n in range(1, max_workers + 1):
        with Supervisor(n) as supervisor:
            pool[n] = pool_rate(supervisor, seconds)
    result["pool_rate"] = {n: p.rate for n, p in pool.items()}
    result["pool_over_seed"] = {n: p.rate / seed for n, p in pool.items()}
    if "avx2" in kernels and "portable" in kernels:
        result["avx2_over_portable"] = kernels["avx2"].cpu_rate / kernels["portable"].cpu_rate
    result["hashcat"] = None
    if hashcat_runs <= 0:
        result["hashcat_note"] = "hashcat skipped (--hashcat-runs 0)"
    else:
        try:
            with Supervisor(max_workers) as supervisor:
                result["hashcat"] = hashcat_against_pool(supervisor, seconds, hashcat_runs)
            result["hashcat_note"] = f"hashcat -b -m 1400 -O and the pool in turns, {hashcat_runs} pairs"
        except HashcatUnavailable as missing:
            result["hashcat_note"] = str(missing)
    result["pool_cpu_share"] = {n: p.cpu_share for n, p in pool.items()}
    one = kernels[default_kernel()]
    result["pool_over_pool_1"] = {n: p.rate / pool[1].rate for n, p in pool.items()}
    result["pool_efficiency"] = {n: p.rate / (n * one.rate) for n, p in pool.items()}
    # The same ratio per CPU second the workers got: the engine's own overhead,
    # whatever else the machine was running.
    result["pool_cpu_efficiency"] = {n: p.cpu_rate / one.cpu_rate for n, p in pool.items()}
    blocks = block_rate(seconds)
    result["sha256_block_rate"] = blocks
    result["kernel_fraction_of_block_rate"] = {name: k.rate / blocks for name, k in kernels.items()}
    result["start_latency"] = {n: _ms(start_latency(n, reps)) for n in sorted({1, 2, max_workers})}
    result["stop_latency"] = {
        kind: _ms(samples) for kind, samples in stop_latency(max_workers, reps, pool[max_workers].rate).items()
    }
    result["load_average_after"] = os.getloadavg()
    return result


def report(r: dict[str, Any]) -> str:
    """Human-readable lines with the targets beside the figures."""
    lines = [
        f"load average before {tuple(round(x, 2) for x in r['load_average_before'])}, "
        f"after {tuple(round(x, 2) for x in r['load_average_after'])}; usable cores {r['usable_workers']}; "
        f"default kernel {r['default_kernel']}; rates: median of {SAMPLES} x {r['seconds_per_rate']} s",
        f"seed loop (1 core)           {r['seed_rate'] / 1e6:8.3f} MH/s",
    ]
    for name, rate in r["kernel_rate_one_worker"].items():
        lines.append(
            f"kernel {name:<10} 1 worker {rate / 1e6:8.3f} MH/s "
            f"({r['kernel_cpu_rate_one_worker'][name] / 1e6:7.3f} per CPU s) {r['kernel_over_seed'][name]:6.2f}x seed  "
            f"{100 * r['kernel_fraction_of_block_rate'][name]:5.1f}% of block rate"
        )
    if "avx2_over_portable" in r:
        lines.append(
            f"avx2 / portable (per CPU s)  {r['avx2_over_portable']:8.2f}x (target >= {TARGETS['avx2_over_portable']})"
        )
    lines.append(f"sha256 block rate (hashlib)  {r['sha256_block_rate'] / 1e6:8.3f} M blocks/s")
    for n, rate in r["pool_rate"].items():
        lines.append(
            f"pool {n} workers               {rate / 1e6:8.3f} MH/s {r['pool_over_seed'][n]:7.1f}x seed  "
            f"{r['pool_over_pool_1'][n]:5.2f}x pool 1  "
            f"efficiency {r['pool_efficiency'][n]:5.2f} (target >= {TARGETS['pool_efficiency']}); "
            f"workers got {r['pool_cpu_share'][n]:4.2f} CPUs, per-CPU efficiency {r['pool_cpu_efficiency'][n]:4.2f}"
        )
    if r["hashcat"] is None:
        lines.append(f"hashcat: {r['hashcat_note']}")
    else:
        h, top = r["hashcat"], max(r["pool_rate"])
        lines.append(
            f"hashcat (all cores)          {h['hashcat_rate'] / 1e6:8.3f} MH/s on {h['hashcat_cpu_share']:4.2f} CPUs, "
            f"pool {top} workers {h['pool_rate'] / 1e6:8.3f} MH/s on {h['pool_cpu_share']:4.2f} CPUs "
            f"({r['hashcat_note']}, medians)"
        )
        lines.append(
            f"pool / hashcat               {h['pool_over_hashcat']:8.2f}x (target >= {TARGETS['pool_over_hashcat']}); "
            f"per CPU each got {h['pool_over_hashcat_per_cpu']:5.2f}x"
        )
    for n, s in r["start_latency"].items():
        lines.append(f"pool start {n} workers          median {s['median_ms']:6.1f} ms  max {s['max_ms']:6.1f} ms")
    for kind, s in r["stop_latency"].items():
        lines.append(
            f"stop latency ({kind:>6} -> exited) median {s['median_ms']:6.1f} ms  max {s['max_ms']:6.1f} ms "
            f"(targets {TARGETS['stop_median_ms']:.0f} / {TARGETS['stop_max_ms']:.0f})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.hashrate", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per rate (default 1)")
    parser.add_argument("--reps", type=int, default=7, help="repetitions of each latency (default 7)")
    parser.add_argument("--max-workers", type=int, default=usable_workers(), help="largest pool (default: usable cores)")
    parser.add_argument("--hashcat-runs", type=int, default=HASHCAT_RUNS,
                        help=f"hashcat runs, each paired with a pool run; 0 skips hashcat (default {HASHCAT_RUNS})")
    args = parser.parse_args(argv)
    result = run(args.seconds, args.reps, args.max_workers, args.hashcat_runs)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
