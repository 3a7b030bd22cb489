"""The worker loop's claiming and abandon rules, run in-process on a plain shared list."""
from __future__ import annotations

import os
import threading

from engine.worker import CANCEL, HASHES, JOB, NEXT_CHUNK, NO_STOP, STOP_CHUNK, _run_job


def fresh_shared(job: int) -> list[int]:
    shared = [0] * (HASHES + 1)
    shared[JOB], shared[NEXT_CHUNK], shared[STOP_CHUNK], shared[CANCEL] = job, 0, NO_STOP, 0
    return shared


def test_a_new_job_stops_the_old_jobs_chunk_at_the_next_slice() -> None:
    # A search that ended by an exception leaves workers on the old job; the
    # next search resets CANCEL and STOP_CHUNK, so only the job id tells them.
    shared = fresh_shared(job=1)
    slices: list[tuple[int, int]] = []

    def scan(prefix: bytes, start: int, stop: int, target: bytes | None) -> int | None:
        slices.append((start, stop))
        if len(slices) == 1:  # the parent starts job 2 meanwhile
            shared[JOB], shared[NEXT_CHUNK], shared[STOP_CHUNK], shared[CANCEL] = 2, 0, NO_STOP, 0
        return None

    found, _ = _run_job(shared, threading.Lock(), 0, 1, b"p", bytes(32), 64 * 64, scan, 64, 1.0, os.getppid())
    assert found is None
    assert slices == [(0, 64)]
    assert shared[NEXT_CHUNK] == 0  # claimed nothing of the new job


def test_a_lower_solution_abandons_a_higher_chunk_but_not_a_lower_one() -> None:
    shared = fresh_shared(job=1)
    shared[NEXT_CHUNK] = 5  # this worker claims chunk 5
    calls: list[int] = []

    def scan(prefix: bytes, start: int, stop: int, target: bytes | None) -> int | None:
        calls.append(start)
        shared[STOP_CHUNK] = 3  # another worker found a solution in chunk 3
        return None

    found, hashes = _run_job(shared, threading.Lock(), 0, 1, b"p", bytes(32), 256, scan, 64, 1.0, os.getppid())
    assert (found, hashes, calls) == (None, 64, [5 * 256])

    shared = fresh_shared(job=1)
    shared[NEXT_CHUNK] = 2
    scanned: list[int] = []

    def scan_low(prefix: bytes, start: int, stop: int, target: bytes | None) -> int | None:
        scanned.append(stop - start)
        shared[STOP_CHUNK] = 3
        return None

    _run_job(shared, threading.Lock(), 0, 1, b"p", bytes(32), 256, scan_low, 64, 1.0, os.getppid())
    assert sum(scanned) == 256  # chunk 2 is below the solution's chunk: finished to its end
