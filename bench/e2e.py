"""End-to-end: a whole task through `tutorial-app run`'s node loop, timed.

    python -m bench.e2e [--reps R] [--subtasks N] [--difficulty D ...]

At a low difficulty the run is all overhead (server start, gRPC, ZIPs,
verification); at a high one it is all search. Printed per difficulty: the
median wall time of a run, seconds per subtask, and the hashes the providers
must at least have tried (sum of nonce + 1) per second, next to the engine
pool's own rate measured right before each run (the median of the per-run
ratios), so the node's overhead shows as a ratio even on a shared machine;
then the rate of nonces the providers reported trying (their progress files).
Also printed: the share a node could reach with no overhead at all, only
the tail (`tail_bound`), the ceiling of the "of the pool's rate" figure.

The work of a run is random (each part's salt is), so two versions differ
by more than their overhead from one series to the next. ``--seed S`` draws
the salts of rep ``r`` from ``S + r``: every version (or checkout) run with
the same seed searches the same nonces rep by rep, and their per-rep
ratios compare pair by pair; the mean ratio is printed too.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import engine
import tutorial_app.requestor
from golem_task_api.loop import run as run_loop
from tutorial_app.forkserver import can_fork_here
from tutorial_app.runner import LocalServers, TaskRun, default_split, scratch_dir, scratch_need_bytes

INPUT = "Golem tutorial app end-to-end benchmark input.\n"


@contextlib.contextmanager
def seeded_salts(seed: int | None) -> Iterator[None]:
    """Within: the requestors of runs started here draw their parts' salts from ``seed``.

    The requestor is forked (through the fork server) from this process, so it
    inherits the seeded source; a requestor started as a fresh interpreter
    would not, hence the check. None: salts stay random."""
    if seed is None:
        yield
        return
    if not can_fork_here():
        raise RuntimeError("--seed needs the fork server forked from this process (one thread only)")
    rng = random.Random(seed)
    real = tutorial_app.requestor.secrets
    tutorial_app.requestor.secrets = SimpleNamespace(  # type: ignore[assignment]
        token_hex=lambda nbytes: rng.randbytes(nbytes).hex())
    try:
        yield
    finally:
        tutorial_app.requestor.secrets = real


def one_run(base: Path, difficulty: int, subtasks: int) -> tuple[float, int, int]:
    """Seconds for one whole task, the hashes it needed at least, and those the providers reported."""
    input_file = base / "input.txt"
    input_file.write_text(INPUT, encoding="utf-8")
    providers, workers = default_split(subtasks, None, None, engine.usable_workers())
    # Where `tutorial-app run` puts it (in memory when there is room).
    scratch = scratch_dir(None, scratch_need_bytes(input_file.stat().st_size, subtasks))
    run = TaskRun(
        LocalServers(scratch, workers), input_file, difficulty, subtasks, providers, base / "out"
    )
    try:
        started = time.perf_counter()
        run_loop(run.run())
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # in memory: never left behind
    report = run.report()
    if not report.ok:
        raise RuntimeError(f"run failed: {report.failures}")
    shutil.rmtree(base / "out")
    return seconds, sum(r.nonce + 1 for r in report.subtasks), report.hashes


def tail_bound(subtasks: int, providers: int, workers: int, cores: int,
               trials: int = 20000, seed: int = 1) -> float:
    """The median share of the pool's rate a node can reach at best: no overhead
    at all, only the tail. A subtask's work is geometric (about exponential);
    parts go to providers as they free up; the computing ones share the cores,
    each using at most ``workers`` of them. Once too few parts are left, cores
    idle unless the providers still computing can use them (workers >= cores:
    no loss at all)."""
    rng = random.Random(seed)
    shares = []
    for _ in range(trials):
        work = [rng.expovariate(1.0) for _ in range(subtasks)]
        waiting, running, clock = list(work), [], 0.0
        while waiting or running:
            while waiting and len(running) < providers:
                running.append(waiting.pop(0))
            speed = min(workers, cores / len(running))  # cores each running part gets
            step = min(running) / speed
            clock += step
            running = [left - step * speed for left in running]
            running = [left for left in running if left > 1e-12]
        shares.append(sum(work) / (cores * clock))
    return statistics.median(shares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--subtasks", type=int, default=4)
    parser.add_argument("--difficulty", type=int, nargs="+", default=[12, 24, 28])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seed", type=int, default=None,
                        help="draw rep r's salts from SEED + r: the same work for every version run with it")
    args = parser.parse_args()

    # The machine is shared: the pool's own rate is measured right before each
    # run, and each run is compared with its own measurement.
    pool_rates: list[float] = []
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        for difficulty in args.difficulty:
            times, hashes, reported, ratios, hashes_needed = [], [], [], [], []
            for _ in range(args.reps):
                pool_rate = engine.benchmark(1.0) * 1e6
                pool_rates.append(pool_rate)
                with seeded_salts(None if args.seed is None else args.seed + len(times)):
                    seconds, needed, tried = one_run(Path(tmp), difficulty, args.subtasks)
                times.append(seconds)
                hashes_needed.append(needed)
                hashes.append(needed / seconds)
                reported.append(tried / seconds)
                ratios.append(needed / seconds / pool_rate)
            rows.append({
                "difficulty": difficulty,
                "subtasks": args.subtasks,
                "median_seconds": statistics.median(times),
                "seconds_per_subtask": statistics.median(times) / args.subtasks,
                "min_hash_rate": statistics.median(hashes),
                "of_pool_rate": statistics.median(ratios),
                "of_pool_rate_mean": statistics.mean(ratios),
                "needed_hashes": hashes_needed,
                "reported_hash_rate": statistics.median(reported),
            })
    if args.json:
        print(json.dumps({"pool_rate": statistics.median(pool_rates), "runs": rows}, indent=2))
        return
    print(f"engine pool rate (engine.benchmark, before each run): median "
          f"{statistics.median(pool_rates) / 1e6:.1f} MH/s, {min(pool_rates) / 1e6:.1f}-"
          f"{max(pool_rates) / 1e6:.1f}")
    cores = engine.usable_workers()
    providers, workers = default_split(args.subtasks, None, None, cores)
    print(f"{args.subtasks} subtasks, median of {args.reps} runs each; with no overhead but the "
          f"tail ({providers} providers x {workers} workers) at most "
          f"{tail_bound(args.subtasks, providers, workers, cores):.2f} of the pool's rate")
    for row in rows:
        print(
            f"difficulty {row['difficulty']:>3}: {row['median_seconds']:6.2f} s per run, "
            f"{row['seconds_per_subtask']:5.2f} s per subtask, "
            f"{row['min_hash_rate'] / 1e6:7.2f} MH/s at least "
            f"({row['of_pool_rate']:.2f} of the pool's rate, mean {row['of_pool_rate_mean']:.2f}; "
            f"{row['reported_hash_rate'] / 1e6:.2f} MH/s tried as the providers reported)"
        )


if __name__ == "__main__":
    main()
