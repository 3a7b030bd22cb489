"""The worker process's loop: claim chunks of the nonce space, scan them in short slices.

Kept free of heavy imports: a worker starts with a fresh interpreter.
"""
from __future__ import annotations

import os
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from engine import descriptors
from engine.kernels import ScanFn, get_kernel

# Layout of the shared int64 array (see engine.supervisor).
JOB = 0  # id of the job the workers should run
NEXT_CHUNK = 1  # the next chunk index to claim
STOP_CHUNK = 2  # no chunk at or above this index is claimed (smallest chunk with a solution)
CANCEL = 3  # non-zero: abandon the job
HASHES = 4  # HASHES + i: nonces tried by worker i in the current job
NO_STOP = 2**63 - 1

_MIN_SLICE = 64


def worker_main(
    conn: Connection, shared: Any, lock: Any, index: int, slice_seconds: float, forked: bool = False
) -> None:
    """Serve jobs from `conn` until it closes or a None arrives."""
    if forked:
        _forget_parent(conn)
    # Ctrl-C belongs to the parent, which then closes the pool in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    scans: dict[str, tuple[ScanFn, float]] = {}
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        job_id, prefix, target, chunk_size, kernel_name = job
        if kernel_name not in scans:
            kernel = get_kernel(kernel_name)
            scans[kernel_name] = (kernel.scan, kernel.rate_estimate)
        scan, rate = scans[kernel_name]
        slice_len = max(_MIN_SLICE, int(rate * slice_seconds))
        found, hashes = _run_job(
            shared, lock, index, job_id, prefix, target, chunk_size, scan, slice_len, slice_seconds, parent
        )
        if found is not None:
            conn.send(("found", job_id, found))
        conn.send(("done", job_id, hashes))


def _forget_parent(conn: Connection) -> None:
    """In a forked worker: drop what belongs to the parent.

    Its event loop's signal wiring (a signal here must not be written into
    the parent loop's wake-up pipe), and its sockets: the supervisor's ends of
    the workers' pipes (socket pairs), held here a worker would never see the
    end of file it exits on; an app server's listening socket and
    connections, which would stay open after the server closed them. They
    are pointed at /dev/null (`engine.descriptors`). Plain pipes stay: one
    of them is how the supervisor sees this process end.
    """
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_DFL)
    descriptors.release(descriptors.inherited([conn.fileno()]), only=descriptors.is_socket)


def _run_job(
    shared: Any,
    lock: Any,
    index: int,
    job_id: int,
    prefix: bytes,
    target: bytes | None,
    chunk_size: int,
    scan: ScanFn,
    slice_len: int,
    slice_seconds: float,
    parent: int,
) -> tuple[int | None, int]:
    hashes = 0
    shared[HASHES + index] = 0
    while True:
        if os.getppid() != parent:
            os._exit(1)  # orphaned: nobody will ever read the answer
        with lock:
            if shared[CANCEL] or shared[JOB] != job_id or shared[NEXT_CHUNK] >= shared[STOP_CHUNK]:
                return None, hashes
            chunk = shared[NEXT_CHUNK]
            shared[NEXT_CHUNK] = chunk + 1
        start = chunk * chunk_size
        end = start + chunk_size
        while start < end:
            # A solution in a lower chunk makes this one useless; so does a new
            # job, which resets CANCEL and STOP_CHUNK for itself.
            if shared[CANCEL] or shared[JOB] != job_id or chunk > shared[STOP_CHUNK]:
                break
            stop = min(end, start + slice_len)
            began = time.perf_counter()
            nonce = scan(prefix, start, stop, target)
            spent = time.perf_counter() - began
            if nonce is not None:
                hashes += nonce - start + 1
                shared[HASHES + index] = hashes
                with lock:
                    # The job check keeps a late find from an abandoned job out of the next one.
                    if shared[JOB] == job_id and chunk < shared[STOP_CHUNK]:
                        shared[STOP_CHUNK] = chunk
                # Every later chunk holds larger nonces: this worker is done.
                return nonce, hashes
            hashes += stop - start
            shared[HASHES + index] = hashes
            if spent > 0:
                # Keep slices near slice_seconds at the speed actually seen.
                wanted = int((stop - start) / spent * slice_seconds)
                slice_len = max(_MIN_SLICE, min(chunk_size, wanted, slice_len * 2))
            start = stop
