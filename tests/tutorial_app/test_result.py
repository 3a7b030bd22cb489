"""The provider's result text."""
from __future__ import annotations

import pytest

from tutorial_app.result import ResultFormatError, format_result, parse_result

DIGEST = "0" * 8 + "ab" * 28


def test_round_trip() -> None:
    assert parse_result(format_result(DIGEST, 1234)) == (DIGEST, 1234)
    assert parse_result(f"{DIGEST} 7\n") == (DIGEST, 7)


@pytest.mark.parametrize("text", [
    "", DIGEST, f"{DIGEST}  5", f"{DIGEST} -5", f"{DIGEST} +5", f"{DIGEST} 1_0", f"{DIGEST} 5 6",
    f"{DIGEST[:-1]} 5", f"{DIGEST}0 5", f"{'g' * 64} 5", f"{DIGEST} ٣", f"{DIGEST} " + "9" * 41,
    "5 " + DIGEST,
])
def test_malformed(text: str) -> None:
    with pytest.raises(ResultFormatError, match="is not"):
        parse_result(text)
