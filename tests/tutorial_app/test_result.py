"""The provider's result text: exactly ``"<64 lower-case hex> <canonical decimal nonce>"``."""
from __future__ import annotations

import hashlib
import time

import pytest

from engine import sha256_hex, verify
from tutorial_app import meta
from tutorial_app.result import ResultFormatError, format_result, parse_result

DIGEST = "0" * 8 + "ab" * 28


def test_round_trip() -> None:
    assert parse_result(format_result(DIGEST, 1234)) == (DIGEST, 1234)
    assert parse_result(f"{DIGEST} 0") == (DIGEST, 0)


def test_seed_provider_text_is_accepted() -> None:
    # The seed guide's (and the published app's) provider writes f"{hexdigest} {nonce}".
    nonce = 987654321
    digest = hashlib.sha256(f"in{nonce}".encode()).hexdigest()
    assert parse_result(f"{digest} {nonce}") == (digest, nonce)


def test_a_41_digit_nonce_is_accepted_and_verifies() -> None:
    nonce = 10**40 + 7
    text = format_result(sha256_hex("x", nonce), nonce)
    digest, parsed = parse_result(text)
    assert parsed == nonce
    verify("x", 0, digest, parsed)


def test_nonce_as_long_as_the_result_limit_allows(low_int_digit_limit: None) -> None:
    digits = "9" * (meta.MAX_RESULT_BYTES - 65)
    digest = hashlib.sha256(("x" + digits).encode()).hexdigest()
    parsed_digest, nonce = parse_result(f"{digest} {digits}")
    assert format_result(parsed_digest, nonce) == f"{digest} {digits}"
    verify("x", 0, parsed_digest, nonce)


@pytest.mark.parametrize("text", [
    "", DIGEST, f"{DIGEST}  5", f"{DIGEST} -5", f"{DIGEST} +5", f"{DIGEST} 1_0", f"{DIGEST} 5 6",
    f"{DIGEST[:-1]} 5", f"{DIGEST}0 5", f"{'g' * 64} 5", f"{DIGEST} ٣", "5 " + DIGEST,
    f"{DIGEST}\t5", f"{DIGEST} 5.0", f"{DIGEST} 0x5", f"{DIGEST} 5e3",
])
def test_malformed(text: str) -> None:
    with pytest.raises(ResultFormatError, match="is not"):
        parse_result(text)


@pytest.mark.parametrize("nonce", ["0007", "00", "01", "0" * 40 + "1"])
def test_non_canonical_nonce_is_refused(nonce: str) -> None:
    # "0007" parses to 7, but sha256(input + "7") is what the digest must be of:
    # the stored text would not hash to the digest it claims.
    with pytest.raises(ResultFormatError, match="leading zero"):
        parse_result(f"{DIGEST} {nonce}")


def test_upper_case_hex_is_refused_as_the_verifier_does() -> None:
    upper = DIGEST.upper()
    with pytest.raises(ResultFormatError, match="digest must be lower-case"):
        parse_result(f"{upper} 5")
    with pytest.raises(ValueError, match="lower-case"):
        verify("x", 0, upper, 5)


@pytest.mark.parametrize("text", [f"{DIGEST} 7\n", f" {DIGEST} 7", f"{DIGEST} 7 ", f"{DIGEST} 7\r\n"])
def test_surrounding_whitespace_is_refused(text: str) -> None:
    with pytest.raises(ResultFormatError, match="whitespace"):
        parse_result(text)


def test_oversized_text_is_refused_at_once_with_a_short_message() -> None:
    text = f"{DIGEST} " + "1" * 5_000_000
    started = time.perf_counter()
    with pytest.raises(ResultFormatError, match="longer than") as info:
        parse_result(text)
    assert time.perf_counter() - started < 0.5
    assert len(str(info.value)) < 200
