"""The proof of work's definition (task-api.md section 5) and its reference search.

digest = sha256((input_data + str(nonce)).encode("utf-8")); a nonce is valid
iff int(digest, 16) < 2 ** (256 - difficulty), difficulty an int in [0, 256].

`check_difficulty` is the one check of a difficulty in this repository;
`parse_difficulty` reads one sent as JSON (the app's task and subtask params)
through it.
"""
from __future__ import annotations

import decimal
import hashlib
import math
import re
import reprlib
from collections.abc import Callable

from engine.errors import SearchCancelled

MIN_DIFFICULTY = 0
MAX_DIFFICULTY = 256

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")

# Below this many bits a nonce's decimal form has fewer than 640 digits, the
# lowest limit Python's int/str conversion can be set to, so str() is safe.
_SHORT_NONCE_BITS = 2000

_SHOWN_CHARS = 60


class InvalidDifficultyError(ValueError):
    """A difficulty that is not a whole number in [0, 256]."""


def check_difficulty(difficulty: object) -> int:
    """Return `difficulty` if it is an int in [0, 256], else raise saying why.

    The engine's own functions take ints only; `parse_difficulty` is for
    difficulties that arrive as JSON. Raises `InvalidDifficultyError` (a
    `ValueError`).
    """
    # bool is an int subclass; True as a difficulty is always a caller's bug.
    if isinstance(difficulty, bool) or not isinstance(difficulty, int):
        raise InvalidDifficultyError(
            f"difficulty must be an integer in [{MIN_DIFFICULTY}, {MAX_DIFFICULTY}], "
            f"not {describe_kind(difficulty)} {short_repr(difficulty)}"
        )
    if not MIN_DIFFICULTY <= difficulty <= MAX_DIFFICULTY:
        raise InvalidDifficultyError(
            f"difficulty={short_repr(difficulty)} is out of range "
            f"(difficulty must be in [{MIN_DIFFICULTY}, {MAX_DIFFICULTY}])"
        )
    return difficulty


def parse_difficulty(value: object) -> int:
    """The difficulty a JSON value stands for, as an int; raise if it is none.

    JSON has one number type, and published requestors send the difficulty
    as a float: an integral finite float (``16.0``) is taken as that int.
    Everything else goes through `check_difficulty`, so a fraction, NaN,
    infinity, a bool or a string is refused with its message.
    """
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return check_difficulty(int(value))
    return check_difficulty(value)


def describe_kind(value: object) -> str:
    """What a JSON-ish value is, in words, for messages."""
    if isinstance(value, float):
        return "a fraction" if math.isfinite(value) else "a non-finite number"
    return {
        bool: "a boolean", int: "an integer", str: "a string", list: "a list",
        dict: "an object", type(None): "null",
    }.get(type(value), f"a {type(value).__name__}")


def check_nonce(nonce: object) -> int:
    """Return `nonce` if it is a non-negative int (of any size), else raise ValueError."""
    if isinstance(nonce, bool) or not isinstance(nonce, int):
        raise ValueError(f"nonce must be a non-negative int, got {type(nonce).__name__} {short_repr(nonce)}")
    if nonce < 0:
        raise ValueError(f"nonce must be non-negative, got {short_repr(nonce)}")
    return nonce


def nonce_text(nonce: int) -> str:
    """The nonce in decimal, as hashed: ``str(nonce)``, for nonces of any size.

    Python refuses ``str()`` of ints beyond its int/str digit limit (4300
    digits by default, lower if so configured); ``decimal`` converts exactly
    without that limit.
    """
    if nonce.bit_length() < _SHORT_NONCE_BITS:
        return str(nonce)
    return str(decimal.Decimal(nonce))


def nonce_from_text(digits: str) -> int:
    """The int a string of ASCII decimal digits stands for, however many there are.

    The caller checks the digits (and bounds their number); this only
    converts, free of Python's int/str digit limit.
    """
    if len(digits) < 600:
        return int(digits)
    return int(decimal.Decimal(digits))


def target_for(difficulty: int) -> int:
    """The integer a digest must stay below: 2 ** (256 - difficulty)."""
    return 1 << (256 - check_difficulty(difficulty))


def target_bytes(difficulty: int) -> bytes | None:
    """The target as 32 big-endian bytes for the kernels; None when every digest qualifies."""
    target = target_for(difficulty)
    return None if target >= 2**256 else target.to_bytes(32, "big")


def sha256_hex(input_data: str, nonce: int) -> str:
    """The hex digest of `input_data` followed by `nonce` in decimal."""
    return hashlib.sha256((input_data + nonce_text(nonce)).encode("utf-8")).hexdigest()


def verify(input_data: str, difficulty: int, digest_hex: str, nonce: int) -> None:
    """Check a claimed solution; raise ValueError saying what is wrong with it.

    The nonce may have any number of digits; messages show at most its
    first digits, so a provider's huge nonce cannot inflate them.
    """
    check_difficulty(difficulty)
    check_nonce(nonce)
    if not isinstance(digest_hex, str) or not _HEX_DIGEST.fullmatch(digest_hex):
        raise ValueError(
            f"digest must be 64 lower-case hex characters, got {short_repr(digest_hex)}"
        )
    actual = sha256_hex(input_data, nonce)
    shown = _shown_nonce(nonce)
    if digest_hex != actual:
        raise ValueError(f"digest mismatch for nonce {shown}: claimed {digest_hex}, actual {actual}")
    if int(actual, 16) >= target_for(difficulty):
        raise ValueError(f"digest {actual} of nonce {shown} misses the target of difficulty {difficulty}")


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


def _shown_nonce(nonce: int) -> str:
    text = nonce_text(nonce)
    if len(text) <= _SHOWN_CHARS:
        return text
    return f"{text[:_SHOWN_CHARS]}... ({len(text)} digits)"


class _ShortRepr(reprlib.Repr):
    """reprlib's bounded repr, also for ints past Python's int/str digit limit."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = self.maxother = _SHOWN_CHARS

    def repr_int(self, x: int, level: int) -> str:
        return _shown_nonce(x)


_REPR = _ShortRepr()


def short_repr(value: object) -> str:
    """A repr of a value sent from outside, for messages: bounded in length and nesting.

    Safe for any value JSON can hold: a 4 MiB string, a list nested
    thousands deep, an int of thousands of digits.
    """
    return _REPR.repr(value)

