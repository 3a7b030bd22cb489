"""Enumerations of the Task API."""
from __future__ import annotations

import enum


class VerifyResult(enum.Enum):
    """Outcome of verifying a subtask result; values are the wire numbers."""

    SUCCESS = 0
    FAILURE = 1
    AWAITING_DATA = 2
    INCONCLUSIVE = 3
