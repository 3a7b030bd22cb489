"""The result text a provider returns, and its one exact form.

A result is exactly ``"<digest> <nonce>"``: the digest as 64 lower-case hex
digits (as ``hashlib``'s ``hexdigest()`` writes it), one space, and the nonce
in canonical decimal: ASCII digits, no sign, no leading zero except for
``"0"`` itself, any number of digits. Nothing else: no surrounding
whitespace, no trailing newline.

Why this strict: the text is stored in ``task_outputs/`` as the proof, and
the proof is ``sha256(input + str(nonce))``; a nonce written ``0007`` would
verify as 7 while the stored text does not hash to its digest. The seed
guide's provider, the published app's and ours all write exactly
``f"{hexdigest} {nonce}"``, so refusing whitespace costs no real provider.

The only bound on the nonce is the result's size (`meta.MAX_RESULT_BYTES`),
checked before anything else so a hostile text costs a length comparison.
"""
from __future__ import annotations

import re

from engine.pow import nonce_from_text, nonce_text
from tutorial_app import meta

_RESULT = re.compile(r"([0-9a-f]{64}) (0|[1-9][0-9]*)")
_DIGITS_AFTER_DIGEST = re.compile(r"[0-9A-Fa-f]{64} [0-9]+")

_SHOWN_CHARS = 100


class ResultFormatError(ValueError):
    """The result text is not ``"<64 lower-case hex> <canonical decimal nonce>"``."""


def format_result(digest_hex: str, nonce: int) -> str:
    """The result text for a found nonce."""
    return f"{digest_hex} {nonce_text(nonce)}"


def parse_result(text: str, max_chars: int = meta.MAX_RESULT_BYTES) -> tuple[str, int]:
    """Split a result text into (digest_hex, nonce), or raise `ResultFormatError` saying why.

    ``text`` must be exactly the module's form; more than ``max_chars``
    characters is refused before it is looked at.
    """
    if len(text) > max_chars:
        raise ResultFormatError(
            f"result text is longer than {max_chars} characters ({len(text)});"
            " expected '<64 hex digits> <decimal nonce>'")
    match = _RESULT.fullmatch(text)
    if match is None:
        raise ResultFormatError(_why_not(text))
    return match.group(1), nonce_from_text(match.group(2))


def _why_not(text: str) -> str:
    """The message for a text that is not a result, naming the rule it breaks."""
    shown = text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."
    rule = "is not '<64 hex digits> <decimal nonce>'"
    if text != text.strip():
        rule += " (no surrounding whitespace or newline is allowed)"
    elif _DIGITS_AFTER_DIGEST.fullmatch(text):
        digest, nonce = text.split(" ")
        if digest != digest.lower():
            rule += " (the digest must be lower-case hex)"
        elif len(nonce) > 1 and nonce.startswith("0"):
            rule += " (the nonce must have no leading zero: its text is what was hashed)"
    return f"result text {shown!r} {rule}"
