"""Type stub for the optional C extension built from engine/_native.c."""

def kernels() -> tuple[str, ...]:
    """Native kernels usable on this CPU and OS, fastest first.

    Out of "avx512", "sha-ni", "avx2", "armv8-sha2", "portable" (always there).
    """

def scan(prefix: bytes, start: int, stop: int, target: bytes | None, kernel: str) -> int | None:
    """First nonce n in [start, stop) with sha256(prefix + str(n).encode()) < target, or None.

    target is 32 big-endian bytes, or None when every digest qualifies;
    0 <= start <= stop <= 2**64; the GIL is released while scanning.
    """
