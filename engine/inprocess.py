"""The search without a pool: threads of the calling process share the nonce space.

A pool costs a process per worker, and a provider that serves one subtask
pays for those processes every subtask. Here the native kernels release the
GIL while they scan, so threads hash in parallel as processes would:

    caller thread ─┐                       ┌─ slice [a, a+s) ─ kernel.scan (no GIL)
    helper threads ┴─ claim the next slice ┤  ...
                      (one shared counter) └─ a hit: record it, claim no more

Slices are claimed in increasing order, so once a hit is known every slice
that starts below it is already claimed, and its thread scans it to the end:
the smallest hit of all is the smallest valid nonce, the one the pool and
the guide's loop find. Each thread's slices start small (a quick search
stays quick) and double while a scan takes under half of `SLICE_SECONDS`
(and stay a small share of the search, `max_slice`), so the Python between
scans stays negligible and a stop request waits for at most one slice. No
thread claims a slice far above the lowest one still being scanned (the
window): with more threads than cores, the thread holding the hit may wait
for a core, and the others would otherwise scan on past it for nothing. The caller's thread checks `should_stop` and reports
progress; a failing thread stops the others and its error is raised.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from engine.errors import EngineError, SearchCancelled
from engine.kernels import Kernel, get_kernel, default_kernel
from engine.pow import check_difficulty, sha256_hex, target_bytes
from engine.records import Progress, Solution

FIRST_SLICE = 1 << 14
MAX_SLICE = 1 << 22
SLICE_SECONDS = 0.005
"""A thread's slices grow until one scan takes about this long."""
SLICES_PER_EXPECTED_SEARCH = 16
"""...and stay below this share of the nonces a search is expected to try (2^d):
once one thread hits, the others finish the slices they hold, above the hit or
not, so smaller slices waste less of a short search."""
MAX_THREADS = 1024


class _Shared:
    """The state the threads of one search share; every field under `lock`."""

    def __init__(self, window: int) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.window = window
        self.next_start = 0
        self.in_flight: set[int] = set()  # starts of the slices being scanned
        self.best: int | None = None
        self.hashes = 0
        self.stop = False
        self.error: BaseException | None = None

    def claim(self, span: int) -> int | None:
        """The start of the next slice of ``span`` nonces; None once stopped or a hit is known
        (every slice not yet claimed starts above it).

        Waits while the slice would end more than ``window`` nonces above the
        lowest slice still being scanned: a thread kept off its core (more
        threads than cores) may hold the hit, and the others must not scan far
        beyond it meanwhile."""
        with self.changed:
            while True:
                if self.stop or self.best is not None:
                    return None
                start = self.next_start
                if not self.in_flight or start + span - min(self.in_flight) <= self.window:
                    break
                self.changed.wait()
            self.next_start = start + span
            self.in_flight.add(start)
            return start

    def scanned(self, start: int, span: int, found: int | None) -> None:
        with self.changed:
            self.in_flight.discard(start)
            self.changed.notify_all()
            if found is None:
                self.hashes += span
                return
            self.hashes += found - start + 1
            if self.best is None or found < self.best:
                self.best = found

    def halt(self, error: BaseException | None = None) -> None:
        """Claim no more slices (a stop, or ``error`` from a thread)."""
        with self.changed:
            self.stop = True
            if error is not None and self.error is None:
                self.error = error
            self.changed.notify_all()


def max_slice(difficulty: int) -> int:
    """The largest slice a thread claims at ``difficulty``."""
    expected = 1 << difficulty
    return max(FIRST_SLICE, min(MAX_SLICE, expected // SLICES_PER_EXPECTED_SEARCH))


def _scan_slices(shared: _Shared, kernel: Kernel, prefix: bytes, target: bytes, largest: int,
                 after_slice: Callable[[], None] | None = None) -> None:
    span = min(FIRST_SLICE, largest)
    while (start := shared.claim(span)) is not None:
        began = time.perf_counter()
        found = kernel.scan(prefix, start, start + span, target)
        took = time.perf_counter() - began
        shared.scanned(start, span, found)
        if found is not None:
            return
        if after_slice is not None:
            after_slice()
        if took < SLICE_SECONDS / 2 and span < largest:
            span = min(span * 2, largest)


def search_in_process(
    input_data: str,
    difficulty: int,
    *,
    threads: int = 1,
    kernel: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[Progress], None] | None = None,
    progress_interval: float = 0.5,
) -> Solution:
    """Find the smallest valid nonce on ``threads`` threads of this process; blocks.

    Returns the same nonce as `engine.search`. A true ``should_stop()`` (asked
    between slices, every few ms) ends the search with SearchCancelled, which
    carries the hashes tried. ``progress`` is called in this thread at most
    every ``progress_interval`` s. ``kernel``: a kernel name, None for the
    default; ValueError if it is not available here."""
    if not isinstance(input_data, str):
        raise TypeError(f"input_data must be str, got {type(input_data).__name__}")
    check_difficulty(difficulty)
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be an int from 1 to {MAX_THREADS}, got {threads!r}")
    if not progress_interval > 0:
        raise ValueError(f"progress_interval must be positive, got {progress_interval!r}")
    chosen = get_kernel(kernel if kernel is not None else default_kernel())
    prefix = input_data.encode("utf-8")
    target = target_bytes(difficulty)
    largest = max_slice(difficulty)
    # Room for every thread's slice and one more: threads that keep their
    # cores never wait.
    shared = _Shared(window=(threads + 1) * largest)
    began = time.perf_counter()
    last_report = began

    def helper() -> None:
        try:
            _scan_slices(shared, chosen, prefix, target, largest)
        except BaseException as exc:  # handed to the caller's thread, which raises it
            shared.halt(exc)

    def between_slices() -> None:
        nonlocal last_report
        if should_stop is not None and should_stop():
            shared.halt()
            return
        now = time.perf_counter()
        if progress is not None and now - last_report >= progress_interval:
            last_report = now
            with shared.lock:
                hashes = shared.hashes
            seconds = now - began
            progress(Progress(hashes, seconds, hashes / seconds if seconds > 0 else 0.0))

    helpers = [threading.Thread(target=helper, name=f"engine-search-{n}", daemon=True)
               for n in range(1, threads)]
    for thread in helpers:
        thread.start()
    try:
        _scan_slices(shared, chosen, prefix, target, largest, between_slices)
    except BaseException:
        shared.halt()
        raise
    finally:
        # A helper finishes its slice (milliseconds) and claims no more.
        for thread in helpers:
            thread.join()
    seconds = time.perf_counter() - began
    if shared.error is not None:
        if isinstance(shared.error, Exception):
            raise EngineError(f"a search thread failed: {shared.error!r}") from shared.error
        raise shared.error
    if shared.best is None:
        # Only a stop ends a search with no hit: the nonce space has no end.
        raise SearchCancelled("search cancelled", hashes=shared.hashes, seconds=seconds)
    return Solution(nonce=shared.best, digest=sha256_hex(input_data, shared.best), hashes=shared.hashes,
                    seconds=seconds, workers=threads, kernel=chosen.name)
