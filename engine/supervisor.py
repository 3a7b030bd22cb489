"""The supervisor: owns the worker pool's lifetime and runs parallel searches on it.

Data flow (one search)::

    caller thread                      shared memory (int64 array + lock)         worker i (process)
    ─────────────                      ──────────────────────────────────         ──────────────────
    Supervisor.search ──job───────────────────────────────────────────pipe──▶  recv job
        │  resets JOB, NEXT_CHUNK=0,   ┌ JOB, CANCEL                       ┐      loop:
        │  STOP_CHUNK=∞, CANCEL=0  ──▶ │ NEXT_CHUNK  ◀── claim c = NEXT++ ─┤◀──    claim chunk c (under lock)
        │                              │ STOP_CHUNK  ◀── min(c) on a find ─┤◀──    scan c in ~5 ms slices,
        │                              │ HASHES[i]   ◀── nonces tried ─────┤◀──    checking CANCEL and c > STOP
        │  every 10 ms: polls          └──────┬────────────────────────────┘
        │  should_stop/cancel (on stop        │ read: sum of HASHES[i]
        │  sets CANCEL); the watchdog reads   ├──▶ progress callback (this thread, every progress_interval)
        │  HASHES[i]: still > stall_seconds   └──▶ Supervisor.progress() (any thread, any time)
        │  -> kill, WorkerStalled
        ◀── ("found", nonce) / ("done", hashes) ──────────────────────pipe───  send
        │  waits on pipes + process sentinels (a dead worker -> WorkerCrashed)
        ▼
    Solution(nonce = smallest found)

Chunks are claimed in increasing order and a chunk is abandoned only when a
solution exists in a lower one, so every chunk below the lowest solution's
chunk is scanned to its end: the answer is the smallest valid nonce, the same
as the sequential reference for every worker count.

A worker that dies or stalls (its hash counter still for stall_seconds: it
was stopped, frozen, or is stuck, perhaps holding the shared lock) fails the
search rather than being worked around: its chunk is unfinished, and a lock
it held would block the others. The pool is torn down, so the next search
starts a fresh one. Stillness counts only time the supervisor itself ran: a
pause of the whole pool (`docker pause`, a starved machine) is no stall.

Workers are forked when the caller's process has no other thread (a
provider at start-up: a worker is then ready in milliseconds, with nothing
to import) and spawned otherwise, as a fork copies only the calling thread
and a lock another thread held would stay held in the child. A forked
worker first forgets what is its parent's (every file descriptor but its
pipe, the parent event loop's signal wiring). Either way workers
stay alive between searches; start() is all or nothing; close() joins them
with a deadline, then terminates, then kills.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from types import TracebackType
from typing import Any

from engine.cores import check_worker_count, usable_workers
from engine.errors import EngineError, PoolStartFailed, SearchCancelled, WorkerCrashed, WorkerStalled
from engine.kernels import Kernel, choose_kernel
from engine.pow import check_difficulty, sha256_hex, target_bytes
from engine.records import Progress, Solution
from engine.worker import CANCEL, HASHES, JOB, NEXT_CHUNK, NO_STOP, STOP_CHUNK, worker_main

log = logging.getLogger(__name__)

START_METHOD = "spawn"
"""How workers start when the process has other threads (see `pool_start_method`)."""
# Longest time a worker scans before it looks at the stop flags again.
SLICE_SECONDS = 0.005
# A chunk is the unit of claiming; after a find, workers finish at most one
# chunk below it, so this bounds the tail of a search.
CHUNK_SECONDS = 0.03
# How often the waiting parent looks at should_stop() and cancel().
POLL_SECONDS = 0.01
# After a cancel, how long workers get to acknowledge before the pool is torn down.
CANCEL_GRACE_SECONDS = 1.0
# A searching worker whose hash counter has not moved for this long is
# stopped, frozen or stuck: it is killed and the search fails (WorkerStalled).
# A healthy worker moves it every slice (SLICE_SECONDS); the default leaves room
# for a machine that is heavily oversubscribed.
STALL_SECONDS = 5.0
# A worker that has not said "ready" this long into a search is stalled too:
# its interpreter boots in ~0.1 s, far longer on a loaded machine.
BOOT_SECONDS = 30.0
# The most one look of the watchdog adds to a worker's stillness. Looks come
# every POLL_SECONDS; a longer gap means this process itself did not run
# (frozen together with its workers, as by `docker pause`, or starved), and
# time nobody watched proves nothing about the workers.
WATCH_STEP_SECONDS = 0.25


_main_swap = threading.Lock()


def pool_start_method() -> str:
    """How a pool started now from this thread starts its workers: "fork" when
    this process has no other thread (on Linux), else START_METHOD."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return START_METHOD


@contextlib.contextmanager
def _bare_main() -> Iterator[None]:
    """Hide the caller's __main__ while a worker is spawned.

    "spawn" re-imports the parent's main module in every child; for the
    provider that is its whole gRPC app, for a stdin script it fails. The
    workers need only engine.worker, so they get an empty __main__ instead.
    """
    with _main_swap:
        real = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if real is not None:
                sys.modules["__main__"] = real


def _discard(procs: list[Any], conns: list[Connection]) -> None:
    """Kill workers that never served (a start that failed half-way) and close their pipes."""
    for conn in conns:
        conn.close()
    for proc in procs:
        with contextlib.suppress(OSError, ValueError):
            proc.kill()
    for proc in procs:
        proc.join(2.0)
        if not proc.is_alive():
            proc.close()


class _Watchdog:
    """How long each worker's hash counter has stood still in one search, as this process saw it."""

    def __init__(self, workers: int, now: float) -> None:
        self._counts: list[int | None] = [None] * workers
        self._looked = now
        # Seconds each worker's counter has not moved; set to 0 when the worker shows life otherwise.
        self.still = [0.0] * workers

    def look(self, counts: dict[int, int], now: float) -> None:
        """Take the current counters of the workers still at work."""
        step = min(max(0.0, now - self._looked), WATCH_STEP_SECONDS)
        self._looked = now
        for i, count in counts.items():
            if count != self._counts[i]:
                self._counts[i] = count
                self.still[i] = 0.0
            else:
                self.still[i] += step


class Supervisor:
    """A pool of search workers; a context manager that closes the pool on exit.

    One search at a time; cancel(), progress() and close() may be called
    from any thread.
    """

    def __init__(
        self, workers: int | None = None, *, kernel: str | None = None, stall_seconds: float = STALL_SECONDS
    ) -> None:
        """`workers` None sizes the pool by usable_workers() (CPUs and the memory limit).

        `stall_seconds`: a searching worker whose hash counter stays still this
        long is killed and the search raises WorkerStalled.
        """
        if workers is None:
            workers = usable_workers()
        self._workers = check_worker_count(workers)
        if not 0 < stall_seconds < float("inf"):
            raise ValueError(f"stall_seconds must be a positive number, got {stall_seconds!r}")
        self._stall_seconds = stall_seconds
        self._kernel: Kernel = choose_kernel(kernel)
        self._start_method = START_METHOD  # of the running pool; chosen at each start()
        self._state_lock = threading.Lock()  # guards start/close
        self._search_lock = threading.Lock()  # one search at a time
        self._cancel = threading.Event()
        self._closing = False
        self._procs: list[Any] = []
        self._conns: list[Connection] = []
        self._ready: set[int] = set()  # indices of the workers that have booted
        self._shared: Any = None
        self._lock: Any = None
        self._job = 0
        # (began, ended or None) of the last search, replaced as a whole so
        # progress() reads a consistent pair from any thread.
        self._span: tuple[float, float | None] | None = None
        # Of the last search: first solution (or cancel) seen -> every worker idle.
        self.last_stop_seconds: float | None = None

    @property
    def workers(self) -> int:
        """Number of worker processes."""
        return self._workers

    @property
    def start_method(self) -> str:
        """How the running (or last) pool's workers were started: "fork" or "spawn"."""
        return self._start_method

    @property
    def kernel(self) -> str:
        """Name of the scan kernel the workers use."""
        return self._kernel.name

    def pids(self) -> list[int]:
        """Process ids of the running workers (empty before start and after close)."""
        return [p.pid for p in self._procs if p.pid is not None]

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the worker processes now, without waiting for them to boot; idempotent.

        All or nothing: if any worker cannot be started, the ones already
        started are killed, every pipe is closed and PoolStartFailed is
        raised; a later start() or search() tries afresh.
        """
        with self._state_lock:
            if self._closing:
                raise EngineError("supervisor is closed")
            if self._procs:
                return
            began = time.perf_counter()
            method = pool_start_method()
            ctx = multiprocessing.get_context(method)
            procs: list[Any] = []
            conns: list[Connection] = []
            try:
                shared = ctx.RawArray("q", HASHES + self._workers)
                lock = ctx.Lock()
                for index in range(self._workers):
                    parent_end, child_end = ctx.Pipe(duplex=True)
                    try:
                        proc = ctx.Process(
                            target=worker_main,
                            args=(child_end, shared, lock, index, SLICE_SECONDS, method == "fork"),
                            name=f"engine-worker-{index}",
                            daemon=True,
                        )
                        with _bare_main():
                            proc.start()
                    except BaseException:
                        parent_end.close()
                        raise
                    finally:
                        child_end.close()  # the child has its own copy now, or never will
                    procs.append(proc)
                    conns.append(parent_end)
            except BaseException as exc:
                _discard(procs, conns)
                if isinstance(exc, Exception):
                    raise PoolStartFailed(
                        f"could not start search worker {len(procs) + 1} of {self._workers}: {exc}"
                    ) from exc
                raise
            self._shared, self._lock, self._procs, self._conns = shared, lock, procs, conns
            self._ready = set()
            self._start_method = method
            log.info(
                "engine: started %d %s workers (kernel %s) in %.0f ms",
                self._workers, method, self._kernel.name, (time.perf_counter() - began) * 1e3,
            )

    def cancel(self) -> None:
        """Make a running search raise SearchCancelled promptly; thread-safe and idempotent."""
        self._cancel.set()
        shared = self._shared
        if shared is not None:
            shared[CANCEL] = 1  # workers see it within one slice

    def progress(self) -> Progress:
        """Work of the running search so far, or of the last one; cheap and safe from any thread.

        Sums the workers' shared hash counters, which each worker updates after
        every scan slice (about SLICE_SECONDS, 5 ms): poll it as often as you
        like, e.g. to report progress while search() blocks another thread.
        The count lags by at most one slice per worker and, when a search
        ends, equals its Solution.hashes. Before the first search and after
        close(): all zeros.
        """
        shared, span = self._shared, self._span
        if shared is None or span is None:
            return Progress(0, 0.0, 0.0)
        began, ended = span
        hashes = sum(shared[HASHES + i] for i in range(self._workers))
        seconds = (time.perf_counter() if ended is None else ended) - began
        return Progress(hashes, seconds, hashes / seconds if seconds > 0 else 0.0)

    def search(
        self,
        input_data: str,
        difficulty: int,
        *,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[Progress], None] | None = None,
        progress_interval: float = 0.5,
    ) -> Solution:
        """Find the smallest valid nonce; blocks, starting the pool if needed.

        Stops early with SearchCancelled on cancel(), close() or a true
        `should_stop()` (polled every POLL_SECONDS). `progress` is called in
        this thread every `progress_interval` s; progress() reads the same
        figures from any other thread. A worker that dies raises
        WorkerCrashed, one that stalls WorkerStalled; either way the pool is
        stopped and the next search starts a fresh one.
        """
        if not isinstance(input_data, str):
            raise TypeError(f"input_data must be str, got {type(input_data).__name__}")
        check_difficulty(difficulty)
        if not progress_interval > 0:
            raise ValueError(f"progress_interval must be positive, got {progress_interval!r}")
        if not self._search_lock.acquire(blocking=False):
            raise EngineError("a search is already running on this supervisor")
        try:
            self._cancel.clear()
            self.start()
            try:
                return self._search(input_data, difficulty, should_stop, progress, progress_interval)
            except BaseException:
                # A failing progress callback or a Ctrl-C must not leave workers scanning.
                shared = self._shared
                if shared is not None:
                    shared[CANCEL] = 1
                raise
            finally:
                span = self._span
                if span is not None and span[1] is None:
                    self._span = (span[0], time.perf_counter())  # progress() stops its clock
        finally:
            self._search_lock.release()

    def _search(
        self,
        input_data: str,
        difficulty: int,
        should_stop: Callable[[], bool] | None,
        progress: Callable[[Progress], None] | None,
        progress_interval: float,
    ) -> Solution:
        prefix = input_data.encode("utf-8")
        target = target_bytes(difficulty)
        chunk_size = max(1024, int(self._kernel.rate_estimate * CHUNK_SECONDS))
        shared = self._shared
        self._job += 1
        job = self._job
        with self._lock:
            shared[NEXT_CHUNK] = 0
            shared[STOP_CHUNK] = NO_STOP
            shared[CANCEL] = 0
            for i in range(self._workers):
                shared[HASHES + i] = 0
            shared[JOB] = job
        began = time.perf_counter()
        self._span = (began, None)
        procs, conns = list(self._procs), list(self._conns)
        for proc, conn in zip(procs, conns):
            try:
                conn.send((job, prefix, target, chunk_size, self._kernel.name))
            except OSError:  # died while idle
                self._crashed(proc)
        by_conn = {conn: i for i, conn in enumerate(conns)}
        by_sentinel = {proc.sentinel: proc for proc in procs}
        pending = set(range(self._workers))
        found: list[int] = []
        hashes = 0
        cancelled_at: float | None = None
        stopping_at: float | None = None  # first solution or cancel seen
        next_progress = began + progress_interval
        watchdog = _Watchdog(self._workers, began)
        while pending:
            if not self._procs:  # torn down by close() from another thread
                raise SearchCancelled("supervisor closed during the search", hashes=hashes)
            try:
                ready = wait([*(conns[i] for i in pending), *by_sentinel], timeout=POLL_SECONDS)
            except (OSError, ValueError):
                raise SearchCancelled("supervisor closed during the search", hashes=hashes) from None
            for obj in ready:
                if obj in by_sentinel:
                    self._crashed(by_sentinel[obj])
            for obj in ready:
                if obj not in by_conn:
                    continue
                try:
                    message = obj.recv()
                except (EOFError, OSError):
                    self._crashed(procs[by_conn[obj]])
                kind = message[0]
                if kind == "ready":
                    self._ready.add(by_conn[obj])
                    watchdog.still[by_conn[obj]] = 0.0
                elif message[1] != job:
                    continue  # a late answer from an earlier, abandoned job
                elif kind == "found":
                    found.append(message[2])
                    if stopping_at is None:
                        stopping_at = time.perf_counter()
                elif kind == "done":
                    hashes += message[2]
                    pending.discard(by_conn[obj])
            now = time.perf_counter()
            if pending and cancelled_at is None and (
                self._cancel.is_set() or self._closing or (should_stop is not None and should_stop())
            ):
                shared[CANCEL] = 1
                cancelled_at = now
                if stopping_at is None:
                    stopping_at = now
            if cancelled_at is None and pending:
                self._watch(watchdog, pending, procs, shared, now)
            if cancelled_at is not None and pending and now - cancelled_at > CANCEL_GRACE_SECONDS:
                log.warning("engine: workers ignored a cancel for %.1f s; tearing the pool down", now - cancelled_at)
                self._teardown(0.1)
                break
            if progress is not None and now >= next_progress and pending:
                next_progress = now + progress_interval
                tried = sum(shared[HASHES + i] for i in range(self._workers))
                elapsed = now - began
                progress(Progress(tried, elapsed, tried / elapsed if elapsed > 0 else 0.0))
        ended = time.perf_counter()
        seconds = ended - began
        self.last_stop_seconds = None if stopping_at is None else ended - stopping_at
        # cancel() sets the shared flag itself, so workers may stop before this
        # loop saw the request; a solution found while cancelling may not be
        # the smallest one, so it is never returned.
        if cancelled_at is not None or self._cancel.is_set() or shared[CANCEL] or not found:
            raise SearchCancelled(f"search cancelled after {hashes} hashes", hashes=hashes, seconds=seconds)
        nonce = min(found)
        return Solution(
            nonce=nonce,
            digest=sha256_hex(input_data, nonce),
            hashes=hashes,
            seconds=seconds,
            workers=self._workers,
            kernel=self._kernel.name,
        )

    def _crashed(self, proc: Any) -> None:
        """Tear the pool down and raise: a dead worker can never finish its chunk."""
        if self._closing:
            # close() from another thread is tearing the pool down and may
            # already have closed this process object.
            raise SearchCancelled("supervisor closed during the search")
        proc.join(0.05)
        name, pid, code = proc.name, proc.pid, proc.exitcode
        self._teardown(0.2)
        if self._closing:
            raise SearchCancelled("supervisor closed during the search")
        raise WorkerCrashed(f"search worker {name} (pid {pid}) died with exit code {code}")

    def _watch(self, watchdog: _Watchdog, pending: set[int], procs: list[Any], shared: Any, now: float) -> None:
        """Raise WorkerStalled if a pending worker's hash counter has stood still too long."""
        watchdog.look({i: shared[HASHES + i] for i in pending}, now)
        booting = max(BOOT_SECONDS, self._stall_seconds)
        stalled = [
            i for i in pending if watchdog.still[i] > (self._stall_seconds if i in self._ready else booting)
        ]
        if stalled:
            self._stalled([procs[i] for i in stalled], max(watchdog.still[i] for i in stalled))

    def _stalled(self, stuck: list[Any], quiet: float) -> None:
        """Kill the stalled workers, tear the pool down and raise WorkerStalled."""
        if self._closing:
            raise SearchCancelled("supervisor closed during the search")
        described = ", ".join(f"{proc.name} (pid {proc.pid})" for proc in stuck)
        # SIGKILL reaches a stopped or frozen process; nothing of its state is needed.
        for proc in stuck:
            with contextlib.suppress(OSError, ValueError):
                proc.kill()
        shared = self._shared
        if shared is not None:
            shared[CANCEL] = 1  # the healthy workers leave the job before the teardown asks them to exit
        self._teardown(0.2)
        if self._closing:
            raise SearchCancelled("supervisor closed during the search")
        log.warning("engine: search worker %s made no progress for %.1f s; pool stopped", described, quiet)
        raise WorkerStalled(
            f"search worker {described} made no progress for {quiet:.1f} s (stopped or stuck); it was killed"
        )

    def close(self, timeout: float = 1.0) -> None:
        """Stop the workers: join them for `timeout` s, then terminate, then kill; idempotent."""
        self._closing = True
        self.cancel()
        # Let a running search see the cancel and return before the pool goes.
        got = self._search_lock.acquire(timeout=max(timeout, 0.0))
        try:
            self._teardown(timeout)
        finally:
            if got:
                self._search_lock.release()

    def _teardown(self, timeout: float) -> None:
        with self._state_lock:
            procs, conns = self._procs, self._conns
            self._procs, self._conns = [], []
            for conn in conns:
                try:
                    conn.send(None)
                except (OSError, ValueError):
                    pass
            deadline = time.monotonic() + timeout
            for proc in procs:
                proc.join(max(0.0, deadline - time.monotonic()))
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
            for proc in procs:
                proc.join(0.5)
                if proc.is_alive():
                    proc.kill()
                    proc.join(1.0)
            for proc in procs:
                if not proc.is_alive():
                    proc.close()
            for conn in conns:
                conn.close()
            self._shared = None if self._closing else self._shared
            if procs:
                log.info("engine: stopped %d workers", len(procs))


def search(
    input_data: str,
    difficulty: int,
    *,
    workers: int | None = None,
    kernel: str | None = None,
    **kw: Any,
) -> Solution:
    """Run one search on a fresh pool that is closed afterwards."""
    check_difficulty(difficulty)
    with Supervisor(workers, kernel=kernel) as supervisor:
        return supervisor.search(input_data, difficulty, **kw)
