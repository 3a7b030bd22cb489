"""The supervisor: owns the worker pool's lifetime and runs parallel searches on it.

Data flow (one search)::

    caller thread                      shared memory (int64 array + lock)         worker i (process)
    ─────────────                      ──────────────────────────────────         ──────────────────
    Supervisor.search ──job───────────────────────────────────────────pipe──▶  recv job
        │  resets JOB, NEXT_CHUNK=0,   ┌ JOB, CANCEL                       ┐      loop:
        │  STOP_CHUNK=∞, CANCEL=0  ──▶ │ NEXT_CHUNK  ◀── claim c = NEXT++ ─┤◀──    claim chunk c (under lock)
        │                              │ STOP_CHUNK  ◀── min(c) on a find ─┤◀──    scan c in ~5 ms slices,
        │                              │ HASHES[i]   ◀── nonces tried ─────┤◀──    checking CANCEL and c > STOP
        │  polls should_stop/cancel    └───────────────────────────────────┘
        │  every 10 ms; on stop sets CANCEL
        ◀── ("found", nonce) / ("done", hashes) ──────────────────────pipe───  send
        │  waits on pipes + process sentinels (a dead worker -> WorkerCrashed)
        ▼
    Solution(nonce = smallest found)

Chunks are claimed in increasing order and a chunk is abandoned only when a
solution exists in a lower one, so every chunk below the lowest solution's
chunk is scanned to its end: the answer is the smallest valid nonce, the same
as the sequential reference for every worker count.

Workers are started with "spawn" (never fork from a threaded process) and
stay alive between searches; close() joins them with a deadline, then
terminates, then kills.
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
from engine.errors import EngineError, SearchCancelled, WorkerCrashed
from engine.kernels import Kernel, choose_kernel
from engine.pow import check_difficulty, sha256_hex, target_bytes
from engine.records import Progress, Solution
from engine.worker import CANCEL, HASHES, JOB, NEXT_CHUNK, NO_STOP, STOP_CHUNK, worker_main

log = logging.getLogger(__name__)

START_METHOD = "spawn"
# Longest time a worker scans before it looks at the stop flags again.
SLICE_SECONDS = 0.005
# A chunk is the unit of claiming; after a find, workers finish at most one
# chunk below it, so this bounds the tail of a search.
CHUNK_SECONDS = 0.03
# How often the waiting parent looks at should_stop() and cancel().
POLL_SECONDS = 0.01
# After a cancel, how long workers get to acknowledge before the pool is torn down.
CANCEL_GRACE_SECONDS = 1.0


_main_swap = threading.Lock()


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


class Supervisor:
    """A pool of search workers; a context manager that closes the pool on exit."""

    def __init__(self, workers: int | None = None, *, kernel: str | None = None) -> None:
        """`workers` None sizes the pool by usable_workers() (CPUs and the memory limit)."""
        if workers is None:
            workers = usable_workers()
        self._workers = check_worker_count(workers)
        self._kernel: Kernel = choose_kernel(kernel)
        self._ctx = multiprocessing.get_context("spawn")  # START_METHOD, spelled out for the type checker
        self._state_lock = threading.Lock()  # guards start/close
        self._search_lock = threading.Lock()  # one search at a time
        self._cancel = threading.Event()
        self._closing = False
        self._procs: list[Any] = []
        self._conns: list[Connection] = []
        self._ready: set[int] = set()
        self._shared: Any = None
        self._lock: Any = None
        self._job = 0
        # Of the last search: first solution (or cancel) seen -> every worker idle.
        self.last_stop_seconds: float | None = None

    @property
    def workers(self) -> int:
        """Number of worker processes."""
        return self._workers

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
        """Start the worker processes now, without waiting for them to boot; idempotent."""
        with self._state_lock:
            if self._closing:
                raise EngineError("supervisor is closed")
            if self._procs:
                return
            began = time.perf_counter()
            self._shared = self._ctx.RawArray("q", HASHES + self._workers)
            self._lock = self._ctx.Lock()
            self._ready = set()
            for index in range(self._workers):
                parent_end, child_end = self._ctx.Pipe(duplex=True)
                proc = self._ctx.Process(
                    target=worker_main,
                    args=(child_end, self._shared, self._lock, index, SLICE_SECONDS),
                    name=f"engine-worker-{index}",
                    daemon=True,
                )
                with _bare_main():
                    proc.start()
                child_end.close()
                self._procs.append(proc)
                self._conns.append(parent_end)
            log.info(
                "engine: started %d %s workers (kernel %s) in %.0f ms",
                self._workers, START_METHOD, self._kernel.name, (time.perf_counter() - began) * 1e3,
            )

    def cancel(self) -> None:
        """Make a running search raise SearchCancelled promptly; thread-safe and idempotent."""
        self._cancel.set()
        shared = self._shared
        if shared is not None:
            shared[CANCEL] = 1  # workers see it within one slice

    def search(
        self,
        input_data: str,
        difficulty: int,
        *,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[Progress], None] | None = None,
        progress_interval: float = 0.5,
    ) -> Solution:
        """Find the smallest valid nonce; blocks, starting the pool if needed."""
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
                    self._ready.add(message[1])
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
