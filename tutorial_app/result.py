"""The result text a provider returns: ``"{digest_hex} {nonce}"`` (the seed's format)."""
from __future__ import annotations

import re

# 64 hex digits, one space, a decimal nonce. The nonce is bounded so a
# hostile file cannot make int() chew on thousands of digits; real nonces
# stay below 2**64 (20 digits).
_RESULT = re.compile(r"([0-9a-fA-F]{64}) ([0-9]{1,40})")


class ResultFormatError(ValueError):
    """The result text is not ``"digest nonce"``."""


def format_result(digest_hex: str, nonce: int) -> str:
    """The result text for a found nonce."""
    return f"{digest_hex} {nonce}"


def parse_result(text: str) -> tuple[str, int]:
    """Split a result text into (digest_hex, nonce); surrounding whitespace is tolerated."""
    match = _RESULT.fullmatch(text.strip())
    if match is None:
        shown = text if len(text) <= 100 else text[:100] + "..."
        raise ResultFormatError(
            f"result text {shown!r} is not '<64 hex digits> <decimal nonce>'")
    return match.group(1), int(match.group(2))
