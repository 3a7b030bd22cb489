"""The proof of work's definition: digest, target, verify, reference search."""
from __future__ import annotations

import hashlib

import pytest

from engine import SearchCancelled, reference_search, sha256_hex, target_for, verify
from engine.pow import target_bytes


def test_digest_is_sha256_of_utf8_input_and_decimal_nonce() -> None:
    assert sha256_hex("żółw", 42) == hashlib.sha256("żółw42".encode("utf-8")).hexdigest()


def test_target_is_two_to_256_minus_difficulty() -> None:
    assert target_for(0) == 2**256
    assert target_for(256) == 1
    assert target_for(10) == 2**246
    assert target_bytes(0) is None
    assert target_bytes(8) == b"\x01" + bytes(31)


@pytest.mark.parametrize("bad", [-1, 257, "3", 3.0, True, None])
def test_invalid_difficulty_is_rejected_clearly(bad: object) -> None:
    with pytest.raises(ValueError, match="difficulty must be"):
        target_for(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="difficulty must be"):
        verify("x", bad, "0" * 64, 0)  # type: ignore[arg-type]


def test_reference_search_finds_first_valid_nonce() -> None:
    digest, nonce = reference_search("abc", 8)
    assert digest == sha256_hex("abc", nonce)
    assert int(digest, 16) < 2**248
    assert all(int(sha256_hex("abc", n), 16) >= 2**248 for n in range(nonce))


def test_reference_search_difficulty_zero_is_nonce_zero() -> None:
    assert reference_search("anything", 0) == (sha256_hex("anything", 0), 0)


def test_reference_search_can_be_stopped() -> None:
    with pytest.raises(SearchCancelled):
        reference_search("x", 256, should_stop=lambda: True)


def test_verify_accepts_a_valid_solution() -> None:
    digest, nonce = reference_search("verify me", 6)
    verify("verify me", 6, digest, nonce)


def test_verify_reports_digest_mismatch() -> None:
    digest, nonce = reference_search("verify me", 6)
    with pytest.raises(ValueError, match="digest mismatch for nonce"):
        verify("verify me", 6, digest, nonce + 1)
    with pytest.raises(ValueError, match="digest mismatch"):
        verify("other input", 6, digest, nonce)


def test_verify_reports_missed_target() -> None:
    digest, nonce = reference_search("verify me", 6)
    easy = sha256_hex("verify me", 1)
    assert int(easy, 16) >= 2**200  # nonce 1 misses difficulty 56 here
    with pytest.raises(ValueError, match="misses the target of difficulty 56"):
        verify("verify me", 56, easy, 1)


@pytest.mark.parametrize("bad", ["", "xyz", "0" * 63, "A" * 64, "g" * 64, 123])
def test_verify_reports_bad_digest_format(bad: object) -> None:
    with pytest.raises(ValueError, match="digest must be 64 lower-case hex"):
        verify("x", 0, bad, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, "1", 1.0, True])
def test_verify_reports_bad_nonce(bad: object) -> None:
    with pytest.raises(ValueError, match="nonce must be"):
        verify("x", 0, sha256_hex("x", 0), bad)  # type: ignore[arg-type]
