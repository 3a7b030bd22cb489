"""engine.layout: salt lengths that keep every nonce's digits in one final SHA-256 block."""
from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.layout import (
    DEFAULT_MAX_NONCE,
    TAIL_WINDOW,
    LayoutError,
    max_one_block_tail,
    one_block_salt_length,
)


def final_blocks(message_len: int, prefix_len: int) -> int:
    """Blocks a hash of `message_len` bytes needs after the prefix's full blocks."""
    padded = (message_len + 9 + 63) // 64
    return padded - prefix_len // 64


def fits(tail: int, max_nonce: int) -> bool:
    return tail + len(str(max_nonce)) + 9 <= 64


@given(
    prefix_len=st.integers(0, 10**7),
    min_salt=st.integers(0, 300),
    max_nonce=st.one_of(st.just(DEFAULT_MAX_NONCE), st.integers(0, 10**40)),
)
def test_every_nonce_up_to_the_limit_fits_one_final_block(prefix_len: int, min_salt: int, max_nonce: int) -> None:
    salt = one_block_salt_length(prefix_len, min_salt, max_nonce)
    assert min_salt <= salt < min_salt + 64
    shaped = prefix_len + salt
    # The largest nonce has the most digits: if it fits, every smaller one does.
    for nonce in (0, 9, max_nonce // 10, max_nonce):
        assert final_blocks(shaped + len(str(nonce)), shaped) == 1
    tail = shaped % 64
    assert max_one_block_tail(max_nonce) - TAIL_WINDOW < tail <= max_one_block_tail(max_nonce)


@given(prefix_len=st.integers(0, 10**6), min_salt=st.integers(0, 200))
def test_no_shorter_salt_would_do(prefix_len: int, min_salt: int) -> None:
    salt = one_block_salt_length(prefix_len, min_salt)
    top = max_one_block_tail()
    for shorter in range(min_salt, salt):
        assert not top - TAIL_WINDOW < (prefix_len + shorter) % 64 <= top


def test_default_limit_covers_13_digit_nonces() -> None:
    # 10**12 is the first 13-digit number: 64 - 9 - 13 = 42 bytes of tail.
    assert max_one_block_tail() == 42
    assert max_one_block_tail(10**12 - 1) == 43
    assert max_one_block_tail(0) == 54
    for prefix_len in range(0, 301):
        salt = one_block_salt_length(prefix_len, 32)
        assert 39 <= (prefix_len + salt) % 64 <= 42


@pytest.mark.parametrize("prefix_len", [0, 1, 10, 45, 46, 54, 63, 64, 100, 300])
def test_shaped_input_hashes_nonces_in_one_block(prefix_len: int) -> None:
    # hashlib counts compressions for us indirectly: the padded message length.
    text = "ü" * (prefix_len // 2) + "x" * (prefix_len % 2)
    data = text.encode("utf-8")
    assert len(data) == prefix_len
    salt = "a" * one_block_salt_length(len(data), 32)
    shaped = (text + salt).encode("utf-8")
    for nonce in (0, 10**9 - 1, 10**12):
        message = shaped + str(nonce).encode()
        assert final_blocks(len(message), len(shaped)) == 1
        assert hashlib.sha256(message).digest() == hashlib.sha256((text + salt + str(nonce)).encode()).digest()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 32), "prefix_len_bytes must be >= 0"),
        ((0, -1), "min_salt must be >= 0"),
        ((0, 32, -5), "max_nonce must be >= 0"),
        ((1.5, 32), "prefix_len_bytes must be a non-negative int"),
        ((True, 32), "prefix_len_bytes must be a non-negative int"),
        ((0, "32"), "min_salt must be a non-negative int"),
        ((0, 32, 10**55), "never fit one block"),
    ],
)
def test_bad_arguments_are_named(args: tuple, message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        one_block_salt_length(*args)
    assert issubclass(LayoutError, ValueError)
