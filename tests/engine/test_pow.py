"""The proof of work's definition: digest, target, verify, reference search."""
from __future__ import annotations

import hashlib

import pytest

from engine import SearchCancelled, reference_search, sha256_hex, target_for, verify
from engine.pow import (
    InvalidDifficultyError, check_difficulty, nonce_from_text, nonce_text, parse_difficulty,
    target_bytes,
)

NAN = float("nan")
INF = float("inf")


def test_digest_is_sha256_of_utf8_input_and_decimal_nonce() -> None:
    assert sha256_hex("żółw", 42) == hashlib.sha256("żółw42".encode("utf-8")).hexdigest()


def test_target_is_two_to_256_minus_difficulty() -> None:
    assert target_for(0) == 2**256
    assert target_for(256) == 1
    assert target_for(10) == 2**246
    assert target_bytes(0) is None
    assert target_bytes(8) == b"\x01" + bytes(31)


BAD_DIFFICULTIES = [
    -1, 257, "3", "16.0", True, False, None, 3.5, 16.000001, NAN, INF, -INF, 257.0, -1.0, [16], 2**80,
]


@pytest.mark.parametrize("bad", BAD_DIFFICULTIES + [3.0])
def test_invalid_difficulty_is_rejected_clearly(bad: object) -> None:
    # The engine's own functions take ints only; floats are for parse_difficulty.
    with pytest.raises(InvalidDifficultyError, match="difficulty must be"):
        check_difficulty(bad)
    with pytest.raises(ValueError, match="difficulty must be"):
        target_for(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="difficulty must be"):
        verify("x", bad, "0" * 64, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", BAD_DIFFICULTIES)
def test_parse_difficulty_refuses_what_is_no_whole_number_in_range(bad: object) -> None:
    with pytest.raises(InvalidDifficultyError, match="difficulty must be"):
        parse_difficulty(bad)


@pytest.mark.parametrize("value, words", [
    (16.5, "must be an integer in \\[0, 256\\], not a fraction 16.5"),
    (NAN, "not a non-finite number nan"), (INF, "not a non-finite number inf"),
    (True, "not a boolean True"), ("16", "not a string '16'"), (None, "not null"),
    (300, "difficulty=300 is out of range \\(difficulty must be in \\[0, 256\\]\\)"),
    (-1.0, "difficulty=-1 is out of range"),
])
def test_difficulty_message_says_what_was_sent(value: object, words: str) -> None:
    with pytest.raises(InvalidDifficultyError, match=words):
        parse_difficulty(value)


def test_integral_float_difficulty_is_that_int() -> None:
    # Published requestors send the difficulty as a JSON float.
    for sent, meant in [(16.0, 16), (0.0, 0), (-0.0, 0), (256.0, 256), (16, 16), (0, 0)]:
        value = parse_difficulty(sent)
        assert value == meant and type(value) is int


def test_difficulty_messages_stay_short_for_huge_or_deep_values() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    for value in (deep, "x" * 1_000_000, 10**10_000):
        with pytest.raises(InvalidDifficultyError) as info:
            parse_difficulty(value)
        assert len(str(info.value)) < 200


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


def test_verify_accepts_a_41_digit_nonce() -> None:
    nonce = 10**40 + 12345
    assert len(str(nonce)) == 41
    verify("big", 0, sha256_hex("big", nonce), nonce)


def test_huge_nonce_is_hashed_as_its_decimal_text(low_int_digit_limit: None) -> None:
    # 4000 digits: what fits a result text; more than Python's lowest str() limit.
    digits = "7" + "0" * 3998 + "3"
    nonce = nonce_from_text(digits)
    assert nonce == 7 * 10**3999 + 3
    assert nonce_text(nonce) == digits
    expected = hashlib.sha256(("in" + digits).encode()).hexdigest()
    assert sha256_hex("in", nonce) == expected
    verify("in", 0, expected, nonce)
    with pytest.raises(ValueError, match="digest mismatch") as info:
        verify("in", 0, "0" * 64, nonce)
    assert len(str(info.value)) < 300 and "(4000 digits)" in str(info.value)
