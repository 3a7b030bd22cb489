"""The proof of work's definition (task-api.md section 5) and its reference search.

digest = sha256((input_data + str(nonce)).encode("utf-8")); a nonce is valid
iff int(digest, 16) < 2 ** (256 - difficulty), difficulty an int in [0, 256].
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from engine.errors import SearchCancelled

MIN_DIFFICULTY = 0
MAX_DIFFICULTY = 256

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def check_difficulty(difficulty: object) -> int:
    """Return `difficulty` if it is an int in [0, 256], else raise ValueError saying why."""
    # bool is an int subclass; True as a difficulty is always a caller's bug.
    if isinstance(difficulty, bool) or not isinstance(difficulty, int):
        raise ValueError(
            f"difficulty must be an int in [{MIN_DIFFICULTY}, {MAX_DIFFICULTY}], "
            f"got {type(difficulty).__name__} {difficulty!r}"
        )
    if not MIN_DIFFICULTY <= difficulty <= MAX_DIFFICULTY:
        raise ValueError(
            f"difficulty must be in [{MIN_DIFFICULTY}, {MAX_DIFFICULTY}], got {difficulty}"
        )
    return difficulty


def check_nonce(nonce: object) -> int:
    """Return `nonce` if it is a non-negative int, else raise ValueError."""
    if isinstance(nonce, bool) or not isinstance(nonce, int):
        raise ValueError(f"nonce must be a non-negative int, got {type(nonce).__name__} {nonce!r}")
    if nonce < 0:
        raise ValueError(f"nonce must be non-negative, got {nonce}")
    return nonce


def target_for(difficulty: int) -> int:
    """The integer a digest must stay below: 2 ** (256 - difficulty)."""
    return 1 << (256 - check_difficulty(difficulty))


def target_bytes(difficulty: int) -> bytes | None:
    """The target as 32 big-endian bytes for the kernels; None when every digest qualifies."""
    target = target_for(difficulty)
    return None if target >= 2**256 else target.to_bytes(32, "big")


def sha256_hex(input_data: str, nonce: int) -> str:
    """The hex digest of `input_data` followed by `nonce` in decimal."""
    return hashlib.sha256((input_data + str(nonce)).encode("utf-8")).hexdigest()


def verify(input_data: str, difficulty: int, digest_hex: str, nonce: int) -> None:
    """Check a claimed solution; raise ValueError saying what is wrong with it."""
    check_difficulty(difficulty)
    check_nonce(nonce)
    if not isinstance(digest_hex, str) or not _HEX_DIGEST.fullmatch(digest_hex):
        raise ValueError(
            f"digest must be 64 lower-case hex characters, got {digest_hex!r:.80}"
        )
    actual = sha256_hex(input_data, nonce)
    if digest_hex != actual:
        raise ValueError(f"digest mismatch for nonce {nonce}: claimed {digest_hex}, actual {actual}")
    if int(actual, 16) >= target_for(difficulty):
        raise ValueError(f"digest {actual} of nonce {nonce} misses the target of difficulty {difficulty}")


def reference_search(
    input_data: str, difficulty: int, *, should_stop: Callable[[], bool] | None = None
) -> tuple[str, int]:
    """The seed guide's sequential loop, kept as the reference: (digest_hex, nonce)."""
    target = target_for(difficulty)
    nonce = 0
    while True:
        if should_stop is not None and should_stop():
            raise SearchCancelled("reference search interrupted", hashes=nonce)
        digest = sha256_hex(input_data, nonce)
        if int(digest, 16) < target:
            return digest, nonce
        nonce += 1
