"""Scan kernels: find the first nonce in a range whose digest is below a target.

Every kernel has the contract of ``engine._native.scan``: the first n in
[start, stop) with sha256(prefix + str(n).encode()) < target (32 big-endian
bytes; None means every digest qualifies), or None. The native kernels come
from the optional C extension ``engine._native``; the pure-Python kernel
"python" is always available and also serves nonces at or beyond 2**64,
which the native kernels do not take.

Native kernels, fastest first as measured on an x86-64 CPU that has them
all: "avx512" (16 nonces per instruction stream), "sha-ni", "avx2" (8
nonces), "armv8-sha2" on AArch64, and "portable" C. The extension reports
only those this CPU and OS can run; ``TUTORIAL_APP_KERNEL`` forces one.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

log = logging.getLogger(__name__)

PYTHON_KERNEL = "python"
KERNEL_ENV = "TUTORIAL_APP_KERNEL"
NATIVE_LIMIT = 2**64

# Rough nonces per second of one core, used to size chunks and first slices
# before a worker has measured its own speed. Underestimates are safe: they
# only make slices shorter.
_RATE_ESTIMATES = {
    "avx512": 40e6,
    "sha-ni": 20e6,
    "avx2": 15e6,
    "armv8-sha2": 15e6,
    "portable": 5e6,
    PYTHON_KERNEL: 1e6,
}
_UNKNOWN_RATE = 1e6

ScanFn = Callable[[bytes, int, int, "bytes | None"], "int | None"]


# Prefixes at least this long keep their midstate between calls (see _midstate).
_MIDSTATE_CACHE_MIN = 4096
_last_midstate: tuple[bytes, "hashlib._Hash"] | None = None


def _midstate(prefix: bytes) -> "hashlib._Hash":
    """sha256(prefix), reused while the same bytes object comes back.

    A worker scans one prefix in many short slices; rehashing a
    multi-megabyte prefix per slice would cost more than the slice. Only
    exact bytes are cached: they are immutable, and the cache holds a
    reference, so identity means equal content.
    """
    global _last_midstate
    cached = _last_midstate
    if cached is not None and cached[0] is prefix:
        return cached[1]
    state = hashlib.sha256(prefix)
    if type(prefix) is bytes and len(prefix) >= _MIDSTATE_CACHE_MIN:
        _last_midstate = (prefix, state)
    return state


def python_scan(prefix: bytes, start: int, stop: int, target: bytes | None) -> int | None:
    """The pure-Python kernel: hashlib midstate of the prefix, one copy per nonce."""
    if start >= stop:
        return None
    if target is None:
        return start
    copy = _midstate(prefix).copy
    for nonce in range(start, stop):
        h = copy()
        h.update(b"%d" % nonce)
        if h.digest() < target:
            return nonce
    return None


@dataclass(frozen=True)
class Kernel:
    """A scan kernel by name, with its expected speed on one core."""

    name: str
    scan: ScanFn
    rate_estimate: float


# The missing extension is reported once per process, not per lookup.
_warned_missing_native = False


def _load_native() -> ModuleType | None:
    global _warned_missing_native
    try:
        from engine import _native
    except ImportError as error:
        if not _warned_missing_native:
            _warned_missing_native = True
            # Loud on purpose: the python kernel is some 20-50x slower than a native one.
            log.warning(
                "engine._native is not available (%s); searching with the pure-Python kernel. "
                "Rebuild with `pip install -e .` (needs a C compiler) for the native kernels.",
                error,
            )
        return None
    return _native


def _native_kernels(native: ModuleType | None) -> list[str]:
    if native is None:
        return []
    try:
        return [str(name) for name in native.kernels()]
    except Exception:  # a broken build must not take the engine down
        log.exception("engine._native.kernels() failed; using the python kernel")
        return []


def available_kernels() -> list[str]:
    """Kernel names usable here, fastest first; "python" is always last."""
    return [*_native_kernels(_load_native()), PYTHON_KERNEL]


def default_kernel() -> str:
    """The kernel to use: $TUTORIAL_APP_KERNEL if set, else the fastest available."""
    wanted = os.environ.get(KERNEL_ENV, "").strip()
    if wanted:
        get_kernel(wanted)  # fail loudly on a typo rather than run slowly
        return wanted
    return available_kernels()[0]


def _native_scan(native: ModuleType, name: str) -> ScanFn:
    native_scan = native.scan

    def scan(prefix: bytes, start: int, stop: int, target: bytes | None) -> int | None:
        if start >= NATIVE_LIMIT:
            return python_scan(prefix, start, stop, target)
        found: int | None = native_scan(prefix, start, min(stop, NATIVE_LIMIT), target, name)
        if found is None and stop > NATIVE_LIMIT:
            return python_scan(prefix, NATIVE_LIMIT, stop, target)
        return found

    return scan


def get_kernel(name: str) -> Kernel:
    """The kernel called `name`; ValueError if it is unknown or unavailable on this machine."""
    rate = _RATE_ESTIMATES.get(name, _UNKNOWN_RATE)
    if name == PYTHON_KERNEL:
        return Kernel(name, python_scan, rate)
    native = _load_native()
    names = _native_kernels(native)
    if native is None or name not in names:
        raise ValueError(
            f"scan kernel {name!r} is not available here; available: {', '.join([*names, PYTHON_KERNEL])}"
        )
    return Kernel(name, _native_scan(native, name), rate)


def choose_kernel(name: str | None) -> Kernel:
    """Resolve an optional kernel name (None: the default) and log the choice."""
    kernel = get_kernel(name if name is not None else default_kernel())
    log.info("engine: using scan kernel %r (available: %s)", kernel.name, ", ".join(available_kernels()))
    return kernel
