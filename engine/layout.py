"""Subtask inputs shaped so that every nonce's digits land in one final SHA-256 block.

A provider hashes ``input + str(nonce)``. The blocks before the last are the
same for every nonce (the kernels hash them once); what a nonce costs is the
final block(s): the input's tail (its length mod 64), the nonce's digits,
and the padding (one 0x80 byte and the 8-byte bit length). When those fit in
64 bytes a nonce costs one compression; when they do not, two. The requestor
picks each part's salt, so it can pick the salt's length such that the tail
leaves room for the digits of every nonce a search may reach, on any
provider. The proof's definition does not change: only the salt's length.

Within what fits, the salt also puts the tail in the last four bytes that
still fit: the multi-lane kernels precompute the rounds over message words
holding only input bytes, so a tail near the top of the window makes every
part about as fast as the fastest layout.
"""
from __future__ import annotations

BLOCK_BYTES = 64
PADDING_BYTES = 9  # the 0x80 byte and the 64-bit message length
DEFAULT_MAX_NONCE = 10**12
# Tails this close to the largest that fits share the same number of
# input-only message words (one 32-bit word), hence the same kernel speed.
TAIL_WINDOW = 4


class LayoutError(ValueError):
    """An argument no salt length can satisfy, or one of the wrong type or sign."""


def _non_negative_int(name: str, value: object) -> int:
    # bool is an int subclass; passing one is always a caller's bug.
    if isinstance(value, bool) or not isinstance(value, int):
        raise LayoutError(f"{name} must be a non-negative int, got {type(value).__name__} {value!r}")
    if value < 0:
        raise LayoutError(f"{name} must be >= 0, got {value}")
    return value


def max_one_block_tail(max_nonce: int = DEFAULT_MAX_NONCE) -> int:
    """The longest input tail (input length mod 64) after which every nonce in [0, max_nonce] fits one block."""
    digits = len(str(_non_negative_int("max_nonce", max_nonce)))
    tail = BLOCK_BYTES - PADDING_BYTES - digits
    if tail < 0:
        raise LayoutError(f"nonces up to {max_nonce} have {digits} digits: they never fit one block with padding")
    return tail


def one_block_salt_length(prefix_len_bytes: int, min_salt: int, max_nonce: int = DEFAULT_MAX_NONCE) -> int:
    """The salt length (in bytes; hex digits are one byte each) for an input of `prefix_len_bytes` UTF-8 bytes.

    The smallest length >= `min_salt` such that the tail of input + salt
    (its length mod 64) lies in the last TAIL_WINDOW bytes that still leave
    room for the digits of every nonce up to `max_nonce` plus the padding.
    The result is below ``min_salt + 64``. LayoutError on a negative or
    non-int argument, or when `max_nonce` has too many digits for any tail.
    """
    prefix_len = _non_negative_int("prefix_len_bytes", prefix_len_bytes)
    least = _non_negative_int("min_salt", min_salt)
    top = max_one_block_tail(max_nonce)
    bottom = max(0, top - TAIL_WINDOW + 1)
    tail = (prefix_len + least) % BLOCK_BYTES
    if bottom <= tail <= top:
        return least
    # Grow the salt until the tail wraps round to `bottom`, or climbs to it.
    return least + (bottom - tail) % BLOCK_BYTES
