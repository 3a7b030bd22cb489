"""Each part's salt shapes its input so every nonce up to 10**12 costs one SHA-256 block."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorial_app import meta
from tutorial_app.requestor import shaped_salt

# Bytes of the final block after the input's tail: the nonce's digits, 0x80, the length.
_DIGITS_OF_1E12 = len(str(10**12))


def _final_block_bytes(text: str, nonce: int) -> int:
    return len(text.encode("utf-8")) % 64 + len(str(nonce)) + 9


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_every_nonce_up_to_1e12_fits_one_final_block(text: str) -> None:
    salt = shaped_salt(text)
    assert _final_block_bytes(text + salt, 10**12) <= 64
    assert _final_block_bytes(text + salt, 0) <= 64


@pytest.mark.parametrize("length", range(0, 130))
def test_salt_is_random_hex_of_bounded_length(length: int) -> None:
    text = "x" * length
    a, b = shaped_salt(text), shaped_salt(text)
    assert len(a) == len(b)
    assert 2 * meta.SALT_BYTES <= len(a) <= meta.MAX_SALT_CHARS
    assert set(a) <= set("0123456789abcdef")
    assert a != b  # fresh randomness per part


def test_multibyte_input_is_measured_in_bytes() -> None:
    text = "é" * 40  # 80 bytes, 40 characters
    salt = shaped_salt(text)
    assert _final_block_bytes(text + salt, 10**12) <= 64
